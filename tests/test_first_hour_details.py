"""The first hour, round two: what ran is printed (every setting, where it came from), the
README and the CLI agree (--quiet, the baseline to beat, timings), and the smaller things —
`nc predict --output` says what it wrote, `nc score` explains its files, `export-onnx` on an
NC model names its members, a readable misclassified.png, search plots that name the split
and metric, `--show` without unused parameters, the search database in the user data
directory, a resumed finished run that says so."""

from __future__ import annotations

import ast
import json
import os
import re
import struct
import subprocess
import sys
import warnings
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

from thetanet.cli import main

REPO = Path(__file__).resolve().parents[1]
SPLIT = "coarse_lexical"
NEIGHBOURS = "weight=2,space=minilm; weight=3,k=10,space=minilm"


def _cli(*args: str, env: dict | None = None, cwd: Path | None = None
         ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "thetanet.cli", *args], capture_output=True,
                          text=True, timeout=300, env=env, cwd=cwd)


def _train(data_root: Path, tmp: Path, out: str, *extra: str) -> subprocess.CompletedProcess:
    return _cli("nc", "train", "--split", SPLIT, "--data-dir", str(data_root), "--cache-dir",
                str(tmp / "cache"), "--out", str(tmp / out), "--features", "words",
                "--max-epochs", "1", "--no-refit", "--neighbours", NEIGHBOURS,
                "--logit-adjustment", "0.5", *extra)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_root):
    pytest.importorskip("tokenizers")  # the neighbours block's MiniLM word space
    tmp = tmp_path_factory.mktemp("nc")
    r = _train(data_root, tmp, "model")
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp, r


# -- item 4: what ran is printed ------------------------------------------------------------


def test_train_prints_every_setting_and_its_origin(trained):
    _, r = trained
    origin = ("recipe coarse_lexical (recipes.py: study nc-coarse_lexical, trial 32",
              "overridden by --features, --max-epochs, --logit-adjustment, --neighbours")
    every = ("softmax regression; features words; neighbours 2 block(s): "
             "weight=2,space=minilm | weight=3,k=10,space=minilm; logit adjustment τ=0.5;")
    for text in (r.stderr, r.stdout):  # the progress and the summary
        assert all(o in text for o in origin) and every in text, text[-3000:]
    assert "early stopping: patience 14, at most 1 epochs; seeds [0]" in r.stdout


def test_train_json_holds_every_setting(trained, data_root):
    tmp, _ = trained
    r = _train(data_root, tmp, "model-json", "--json", "--quiet")
    assert r.returncode == 0 and r.stderr == "", r.stderr[-2000:]
    doc = json.loads(r.stdout)[SPLIT]
    assert doc["settings"]["neighbours"] == NEIGHBOURS
    assert doc["settings"]["logit_adjustment"] == 0.5
    assert doc["settings"]["features"] == ["words"] and doc["settings"]["hidden"] == []
    assert doc["settings_from"].startswith("recipe coarse_lexical (recipes.py: study")


def test_a_study_trial_is_named_as_the_origin():
    from thetanet.cli.nc_settings_report import settings_origin

    args = Namespace(study_origin={"study": "nc-x", "trial": 7, "value": 0.5}, hidden=[8],
                     seed=0)
    assert settings_origin("fine_random", args) == ("study 'nc-x' trial 7 (val weighted-F1 "
                                                     "0.5000), overridden by --hidden")


# -- item 5: --quiet as documented ------------------------------------------------------------


def test_quiet_is_described_alike_in_the_readme_and_the_help(capsys):
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert ("`--quiet` prints only the result (the scores and where the model went: no "
            "progress on stderr, no settings, per-relation table or hints on stdout)") in readme
    with pytest.raises(SystemExit):
        main(["nc", "train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split()).replace("per- relation",
                                                                  "per-relation")
    assert ("print only the result (the scores and where the model went): no progress on "
            "stderr, and no settings, per-relation table or hints on stdout") in help_text


# -- item 6 -----------------------------------------------------------------------------------


def test_predict_output_says_how_many_lines(trained, data_root):
    tmp, _ = trained
    out = tmp / "pred.tsv"
    r = _cli("nc", "predict", "--model", str(tmp / "model"), "--input",
             str(data_root / "tratz" / SPLIT / "val.tsv"), "--output", str(out),
             "--cache-dir", str(tmp / "cache"))
    assert r.returncode == 0, r.stderr
    n = len(out.read_text(encoding="utf-8").splitlines())
    assert n == len((data_root / "tratz" / SPLIT / "val.tsv").read_text().splitlines())
    assert f"wrote {n:,} prediction line(s) to {out}" in r.stderr and r.stdout == ""


def test_a_long_prediction_says_how_far_it_is(trained, data_root, monkeypatch, capsys):
    from thetanet.cli import nc_predict

    tmp, _ = trained
    monkeypatch.setattr(nc_predict, "PROGRESS_EVERY", 0.0)  # as if every chunk took long
    out = tmp / "pred2.tsv"
    assert main(["nc", "predict", "--model", str(tmp / "model"), "--input",
                 str(data_root / "tratz" / SPLIT / "val.tsv"), "--output", str(out),
                 "--cache-dir", str(tmp / "cache")]) == 0
    err = capsys.readouterr().err
    n = len(out.read_text(encoding="utf-8").splitlines())
    assert re.search(rf"nc predict: {n:,} compounds so far \([\d,]+/s\)", err), err
    assert err.index("compounds so far") < err.index(f"wrote {n:,} prediction line(s)")


def test_score_explains_gold_and_pred(capsys):
    with pytest.raises(SystemExit):
        main(["nc", "score", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--gold GOLD_TSV the gold compounds: modifier<TAB>head<TAB>RELATION" in text
    assert "--pred PRED_TSV the predictions for the same compounds in the same order" in text


def test_export_onnx_of_an_nc_model_names_its_members(trained, capsys):
    tmp, _ = trained
    model = tmp / "model"
    assert main(["export-onnx", str(model), "-o", str(tmp / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "no saved model here" not in err and "an ensemble of 1 network(s): member-0" in err
    command = re.search(r"`thetanet (export-onnx [^`]+)`", err).group(1).split()
    pytest.importorskip("onnx")
    assert main([command[0], command[1], command[2], str(tmp / command[3])]) == 0
    assert (tmp / "member-0.onnx").stat().st_size > 0


def test_misclassified_grid_leaves_room_for_its_title(tmp_path):
    pytest.importorskip("matplotlib")
    from thetanet.plots import plot_digit_grid

    title = "sklearn-digits: misclassified test digits, true → predicted (2 of 2)"
    path = plot_digit_grid(np.random.default_rng(0).random((2, 8, 8)), [1, 2], [3, 4],
                           tmp_path / "m.png", title=title)
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    assert width >= 600 and height >= 150  # was 260 × 185 with the title cut


def _study(n_trials: int):
    optuna = pytest.importorskip("optuna")
    from optuna.distributions import FloatDistribution

    from thetanet.search import SETUP_ATTR

    study = optuna.create_study(direction="maximize", study_name="nc-fine_random")
    study.set_user_attr(SETUP_ATTR, {"split": "fine_random", "metric": "val weighted-F1"})
    dist = {"l2": FloatDistribution(1e-5, 1e-1, log=True), "lr": FloatDistribution(1e-4, 1e-1)}
    rng = np.random.default_rng(0)
    for _ in range(n_trials):
        params = {"l2": float(10 ** rng.uniform(-5, -1)), "lr": float(rng.uniform(1e-4, 0.1))}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions=dist, value=float(rng.random()),
            intermediate_values={0: 0.1, 1: float(rng.random())}))
    return study


def test_search_plots_name_split_and_metric_and_warn_of_few_trials():
    pytest.importorskip("matplotlib")
    from thetanet.cli.nc_search import figures

    figs = figures(_study(3))
    titles = {name: " ".join(fig.axes[0].get_title().split()) for name, fig in figs.items()}
    assert all(fig.axes[0].get_title(loc="left") == "" for fig in figs.values())  # Optuna's
    legend = [t.get_text() for t in figs["optimization_history"].axes[0].get_legend().texts]
    assert legend == ["val weighted-F1", "best val weighted-F1 so far"]
    assert set(titles) == {"optimization_history", "param_importances", "intermediate_values"}
    assert all("nc-fine_random on fine_random" in t and "val weighted-F1" in t
               for t in titles.values()), titles
    assert "(3 finished trials: too few for more than a rough guide)" in titles[
        "param_importances"]
    many = " ".join(figures(_study(20))["param_importances"].axes[0].get_title().split())
    assert "20 finished trials" in many and "rough guide" not in many


def test_show_sets_unused_parameters_apart(capsys):
    from thetanet.cli.nc_search import print_summary

    params = {"use_wordnet": False, "weight_wordnet": 2.0, "normalize_wordnet": True,
              "use_words": True, "weight_words": 0.5, "use_neighbours": False, "layers": 0}
    doc = {"study": "nc-x", "trials": 1, "states": {"COMPLETE": 1}, "best_trial": 0,
           "best_value": 0.5, "best_params": dict(params)}
    print_summary(dict(doc), as_json=False)
    out = capsys.readouterr().out
    listed = [line.strip() for line in out.splitlines() if line.startswith("  ") and "=" in line]
    assert listed == ["use_wordnet = False", "use_words = True", "weight_words = 0.5",
                      "use_neighbours = False", "layers = 0"]
    assert "(drawn but unused, their block being off: normalize_wordnet, weight_wordnet)" in out
    print_summary(dict(doc), as_json=True)
    assert json.loads(capsys.readouterr().out)["best_params_unused"] == [
        "normalize_wordnet", "weight_wordnet"]


def test_search_database_goes_to_the_user_data_directory(data_root, tmp_path):
    pytest.importorskip("optuna")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "share")}
    r = _cli("nc", "search", "--split", SPLIT, "--space", "quick", "--trials", "1",
             "--data-dir", str(data_root), "--cache-dir", str(tmp_path / "cache"), "--quiet",
             env=env, cwd=work)
    assert r.returncode == 0 and r.stderr == "", r.stderr[-2000:]  # --quiet: no progress
    assert (tmp_path / "share" / "thetanet" / "thetanet-search.db").is_file()
    assert list(work.iterdir()) == []
    shown = _cli("nc", "search", "--split", SPLIT, "--show", env=env, cwd=work)
    assert shown.returncode == 0 and f"study nc-{SPLIT}: 1 trials" in shown.stdout


def test_resuming_a_finished_run_warns_and_names_no_cli_flag(tmp_path):
    from thetanet import Dense, Sequential
    from thetanet.checkpoint import ResumedFinishedWarning

    x = np.random.default_rng(0).random((40, 3)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)

    def fit():
        m = Sequential([Dense(4, "relu"), Dense(2, "softmax")], seed=0)
        m.compile("adam", "sparse_categorical_crossentropy")
        return m.fit(x, y, epochs=2, verbose=0, seed=0, checkpoint=tmp_path / "c", resume=True)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit()  # the first run: nothing to warn about
    with pytest.warns(ResumedFinishedWarning) as caught:
        fit()
    message = str(caught[0].message)
    assert "nothing more is trained" in message and "--" not in message
    assert caught[0].filename == __file__  # points at the caller's fit


# -- README against the benchmark results ------------------------------------------------------


def _readme_rows() -> dict[str, list[str]]:
    rows = {}
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in ("fine_random", "fine_lexical", "coarse_random",
                                            "coarse_lexical"):
            rows[cells[0]] = cells
    return rows


def test_the_readme_quotes_the_baseline_of_the_benchmark():
    tree = ast.parse((REPO / "benchmarks" / "nc.py").read_text(encoding="utf-8"))
    target = next(ast.literal_eval(node.value) for node in tree.body
                  if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "")
                  == "TARGET")
    nc_md = (REPO / "benchmarks" / "results" / "nc.md").read_text(encoding="utf-8")
    rows = _readme_rows()
    assert set(rows) == set(target)
    for split, value in target.items():
        assert float(rows[split][3]) == pytest.approx(value, abs=5e-4)
        column = {line.split("|")[7].strip() for line in nc_md.splitlines()
                  if line.startswith(f"| {split} |") and line.count("|") == 10}
        assert column == {f"{value:.3f}"}


def test_the_readme_timings_are_those_of_nc_timing():
    timing = (REPO / "benchmarks" / "results" / "nc_timing.md").read_text(encoding="utf-8")
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    for split in ("fine_random", "coarse_random", "fine_lexical", "coarse_lexical"):
        seconds = re.search(rf"nc train --split {split}` \(features cached\) \| ([\d.]+) s",
                            timing).group(1)
        assert f"{seconds} s ({split})" in readme
    assert "the progress on stderr shows where a run is" in readme
