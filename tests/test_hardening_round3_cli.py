"""Issue 27, items 3, 6, 7, 8 and 10 (command line): a crafted study, feature options, a
``--space`` file, storage URLs, an existing ``--plots`` file and ``--timeout`` are one line,
exit status 2, before any work — never a traceback, never a half-written result."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thetanet.cli import main
from thetanet.compounds.features import EXTRACTORS
from thetanet.compounds.features.featureset import check_feature_spec

optuna = pytest.importorskip("optuna")
from optuna.distributions import (  # noqa: E402
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from thetanet.compounds.search import SPACES  # noqa: E402
from thetanet.search import SETUP_ATTR  # noqa: E402

SPLIT = "coarse_random"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert code == 2 and lines and "Traceback" not in err, err[-1500:]
    assert lines[-1].startswith("thetanet nc: error:"), err[-1500:]
    return lines[-1]


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """An empty data root: a command that loaded data first would fail on that instead."""
    root = tmp_path / "empty-data"
    root.mkdir()
    monkeypatch.setenv("THETANET_DATA", str(root))
    monkeypatch.chdir(tmp_path)
    return root


# --------------------------------------------------------------------------------------------
# item 3: nc train --from-study with a crafted study
# --------------------------------------------------------------------------------------------


def _crafted_study(url: str, params: dict, dists: dict, setup=None) -> None:
    study = optuna.create_study(storage=url, study_name=f"nc-{SPLIT}", direction="maximize")
    study.set_user_attr(SETUP_ATTR, setup if setup is not None else {
        "split": SPLIT, "space": SPACES["quick"].to_dict(), "seeds": [0]})
    study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=0.9))


QUICK = {"layers": 1, "activation": "relu", "units_0": 32, "learning_rate": 0.01,
         "batch_size": 128, "l2_on": False}
QUICK_D = {"layers": IntDistribution(0, 10**9), "activation": CategoricalDistribution(
    ["relu", "evil", "maxout"]), "units_0": IntDistribution(-10**12, 10**12),
    "learning_rate": FloatDistribution(-1e30, 1e30), "batch_size": IntDistribution(1, 10**6),
    "l2_on": CategoricalDistribution([True, False]), "l2": FloatDistribution(-1e30, 1e30),
    "weight_chars": FloatDistribution(0, math.inf)}

CRAFTED = [({"units_0": 200_000}, "units_0"), ({"units_0": 1e9}, "units_0"),
           ({"activation": "evil"}, "activation"), ({"activation": "maxout"}, "activation"),
           ({"learning_rate": -5.0}, "learning_rate"),
           ({"l2_on": True, "l2": -100.0}, "l2"), ({"layers": 99}, "layers"),
           ({"weight_chars": math.inf}, "weight_chars"),
           ({"weight_chars": 1e30}, "weight_chars")]


@pytest.mark.parametrize("change, name", CRAFTED)
def test_a_crafted_best_trial_is_refused_before_loading(no_data, capsys, change, name):
    params = {**QUICK, **change}
    dists = {k: QUICK_D[k] for k in params}
    if isinstance(params["units_0"], float):
        dists["units_0"] = FloatDistribution(-1e30, 1e30)
    _crafted_study("sqlite:///s.db", params, dists)
    code, out, err = _run(capsys, "nc", "train", "--split", SPLIT, "--from-study",
                          "--storage", "sqlite:///s.db", "--quiet")
    line = _one_line_error(code, err)
    assert name in line and "trial 0" in line
    assert not Path("models").exists()


SETUPS = [{"split": SPLIT, "space": {**SPACES["quick"].to_dict(), "features": ["nosuch"]},
           "seeds": [0]},
          {"split": SPLIT, "space": {**SPACES["quick"].to_dict(), "patience": -5},
           "seeds": [0]},
          {"split": SPLIT, "space": {**SPACES["quick"].to_dict(), "units": [1, 10**9]},
           "seeds": [0]},
          {"split": SPLIT, "space": SPACES["quick"].to_dict(), "seeds": 7},
          "a setup stored as a string", ["a", "list"]]


@pytest.mark.parametrize("setup", SETUPS)
def test_a_crafted_setup_is_refused_before_loading(no_data, capsys, setup):
    _crafted_study("sqlite:///s.db", QUICK, {k: QUICK_D[k] for k in QUICK}, setup)
    code, out, err = _run(capsys, "nc", "train", "--split", SPLIT, "--from-study",
                          "--storage", "sqlite:///s.db", "--quiet")
    assert "setup" in _one_line_error(code, err)


# --------------------------------------------------------------------------------------------
# item 3/10: a continuing search with an enqueued or a crafted trial
# --------------------------------------------------------------------------------------------


def _quick_search_study(url: str) -> optuna.Study:
    from thetanet.compounds.search import study_name_for

    study = optuna.create_study(storage=url, study_name=study_name_for(SPLIT),
                                direction="maximize")
    return study


@pytest.fixture
def tratz(data_root, monkeypatch, tmp_path):
    if not (data_root / "tratz" / SPLIT / "train.tsv").is_file():
        pytest.skip("no Tratz data")
    monkeypatch.chdir(tmp_path)
    return data_root


def _search(capsys, *extra: str) -> tuple[int, str, str]:
    return _run(capsys, "nc", "search", "--split", SPLIT, "--space", "quick", "--trials", "1",
                "--storage", "sqlite:///s.db", "--cache-dir", "cache", *extra)


@pytest.mark.parametrize("enqueued, name", [({"units_0": 200_000}, "units_0"),
                                             ({"learning_rate": -5.0}, "learning_rate"),
                                             ({"learning_rate": float("nan")},
                                              "learning_rate"),
                                             ({"layers": 99}, "layers"),
                                             ({"activation": "evil"}, "activation")])
def test_an_enqueued_out_of_range_trial_is_refused_not_trained(tratz, capsys, enqueued, name):
    study = _quick_search_study("sqlite:///s.db")
    study.enqueue_trial({**QUICK, **enqueued})
    code, out, err = _search(capsys)
    line = _one_line_error(code, err)
    assert name in line and "trial 0" in line
    states = [t.state for t in optuna.load_study(study_name=study.study_name,
                                                 storage="sqlite:///s.db").trials]
    assert optuna.trial.TrialState.COMPLETE not in states


def test_a_crafted_trial_in_a_continuing_search_names_its_parameter(tratz, capsys):
    study = _quick_search_study("sqlite:///s.db")
    study.add_trial(optuna.trial.create_trial(
        params={"layers": 1, "activation": "evil"},
        distributions={"layers": IntDistribution(0, 1),
                       "activation": CategoricalDistribution(["evil"])}, value=0.1))
    code, out, err = _search(capsys)
    line = _one_line_error(code, err)
    assert "parameter activation" in line


# --------------------------------------------------------------------------------------------
# item 6: feature options declared by each extractor, checked by the CLI and the search
# --------------------------------------------------------------------------------------------

BAD_FEATURES = ["chars:evil=1", "chars:weight=1e30", "wordnet:weight=nan",
                "pair-bilinear:d=0", "minilm-static:parts=evil",
                "chars:ngram_min=5,ngram_max=2", "words:lowercase=maybe",
                "minilm-static:model=org/name,parts=mod+evil", "wordnet:max_senses=0",
                "wordnet-gloss:senses=-1", "minilm-paraphrase:templates=nope"]


@pytest.mark.parametrize("spec", BAD_FEATURES)
def test_bad_feature_options_are_one_line_before_any_work(no_data, capsys, spec):
    code, out, err = _run(capsys, "nc", "train", "--split", SPLIT, "--features", spec,
                          "--quiet")
    line = _one_line_error(code, err)
    assert spec.split(":")[0] in line and "layer sizes" not in line


def test_every_built_in_extractor_declares_a_rule_for_each_option():
    for name, cls in EXTRACTORS.items():
        assert set(cls.defaults) <= set(cls.option_rules), name


@settings(max_examples=60, deadline=None)
@given(lo=st.integers(-3, 25), hi=st.integers(-3, 25), weight=st.floats(allow_nan=True),
       min_count=st.integers(-2, 5))
def test_the_spec_check_agrees_with_making_the_extractor(lo, hi, weight, min_count):
    spec = f"chars:ngram_min={lo},ngram_max={hi},weight={weight!r},min_count={min_count}"
    valid = (1 <= lo <= hi <= 20 and math.isfinite(weight) and abs(weight) <= 1e6
             and min_count >= 1)
    try:
        name, options = check_feature_spec(spec)
    except ValueError as exc:
        assert not valid and "\n" not in str(exc)
        with pytest.raises(ValueError):
            EXTRACTORS["chars"](cache_dir=False, **_parsed(spec))
        return
    assert valid
    EXTRACTORS[name](cache_dir=False, **options)


def _parsed(spec: str) -> dict:
    from thetanet.compounds.features import parse_feature_spec

    return parse_feature_spec(spec)[1]


@pytest.mark.parametrize("field, value", [("units", "ab"), ("max_epochs", "lots"),
                                          ("units", [16, 10**9]), ("layers", [0, 99]),
                                          ("features", ["nosuch"]), ("patience", -5),
                                          ("learning_rate", [-1, 0.1]),
                                          ("batch_sizes", [0]), ("weights", [1, math.inf])])
def test_a_bad_space_file_is_one_line_before_any_work(no_data, capsys, field, value):
    Path("space.json").write_text(json.dumps({field: value}))
    code, out, err = _run(capsys, "nc", "search", "--split", SPLIT, "--space", "space.json",
                          "--storage", "sqlite:///s.db", "--trials", "1")
    assert field in _one_line_error(code, err)
    assert not Path("s.db").exists()


# --------------------------------------------------------------------------------------------
# items 7, 8, 10: storage, --plots, --timeout
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [["--storage", "sqlite://"], ["--storage", "sqlite:///"],
                                   ["--storage", "sqlite:///:memory:"], ["--storage", " "],
                                   ["--storage", "sqlite:///nofolder/s.db"],
                                   ["--timeout", "-5"], ["--timeout", "nan"],
                                   ["--timeout", "inf"], ["--timeout", "0"]])
def test_search_options_used_late_are_checked_first(no_data, capsys, extra):
    code, out, err = _run(capsys, "nc", "search", "--split", SPLIT, "--space", "quick",
                          "--trials", "1", *extra)
    _one_line_error(code, err)
    assert not any(Path().glob("*.db"))


@pytest.mark.parametrize("show", [[], ["--show"]])
def test_plots_onto_an_existing_file_is_refused_before_any_trial(no_data, capsys, show):
    Path("plots").write_text("mine")
    code, out, err = _run(capsys, "nc", "search", "--split", SPLIT, "--space", "quick",
                          "--trials", "1", "--storage", "sqlite:///s.db", "--plots", "plots",
                          *show)
    assert "--plots" in _one_line_error(code, err)
    assert Path("plots").read_text() == "mine" and not Path("s.db").exists()


def test_a_read_only_database_is_one_line(no_data, capsys, monkeypatch):
    import os

    Path("ro.db").write_bytes(b"")
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p).endswith("ro.db")
                        and mode & os.W_OK else real(p, mode, **kw))
    code, out, err = _run(capsys, "nc", "search", "--split", SPLIT, "--space", "quick",
                          "--trials", "1", "--storage", "sqlite:///ro.db")
    assert "not writable" in _one_line_error(code, err)


def test_storage_errors_inside_optuna_are_one_line():
    from sqlalchemy.exc import OperationalError

    from thetanet.cli import CLIError
    from thetanet.cli.nc_search import _call

    def failing():
        try:
            raise OperationalError("INSERT", {}, Exception("attempt to write a readonly "
                                                          "database"))
        except OperationalError as exc:
            raise optuna.exceptions.StorageInternalError("An exception is raised during "
                                                         "the commit.\nexceeding max length"
                                                         ) from exc

    with pytest.raises(CLIError, match="storage error: .*readonly database") as err:
        _call(failing)
    assert "\n" not in str(err.value)


def test_a_garbage_database_file_is_one_line(no_data, capsys):
    Path("junk.db").write_bytes(b"this is not a database" * 100)
    code, out, err = _run(capsys, "nc", "search", "--split", SPLIT, "--show",
                          "--storage", "sqlite:///junk.db")
    assert "storage" in _one_line_error(code, err) or "junk.db" in err


def test_a_damaged_minilm_file_in_training_is_one_line_naming_it(tratz, capsys, tmp_path):
    """Item 5 at the command line: the table is truncated; training says so in one line."""
    from thetanet.compounds.embeddings import EmbeddingsMissingError, resolve_model_dir

    try:
        src = resolve_model_dir()
    except EmbeddingsMissingError:
        pytest.skip("the MiniLM package is not installed")
    d = tmp_path / "minilm"
    d.mkdir()
    (d / "tokenizer.json").write_bytes((src / "tokenizer.json").read_bytes())
    with open(src / "model.safetensors", "rb") as fh:
        (d / "model.safetensors").write_bytes(fh.read(3_000_000))  # cut mid-table
    code, out, err = _run(capsys, "nc", "train", "--split", SPLIT, "--features",
                          f"minilm-static:model={d}", "--quiet", "--cache-dir", "cache",
                          "--out", "m")
    line = _one_line_error(code, err)
    assert "model.safetensors" in line and not Path("m").exists()
