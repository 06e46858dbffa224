"""Architecture search on Optuna: storage URLs, the space, reproducible trials, workers that
share one SQLite study, a worker killed or interrupted mid-trial, and the CLI entries."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

if os.environ.get("CI"):
    import optuna  # CI installs the search extra: never skip there
else:
    optuna = pytest.importorskip("optuna")

from thetanet import Dropout, Maxout  # noqa: E402
from thetanet.compounds.settings import NCSettings  # noqa: E402
from thetanet.search import (  # noqa: E402
    Architecture,
    SearchSpace,
    display_url,
    fit_architecture,
    search_architecture,
    storage_url,
    suggest,
)

WORKER = Path(__file__).parent / "helpers" / "search_worker.py"
sys.path.insert(0, str(WORKER.parent))
from search_worker import SPACE, blobs  # noqa: E402

State = optuna.trial.TrialState


def load(db: Path, study: str):
    return optuna.load_study(study_name=study, storage=storage_url(str(db)))


def worker(db: Path, study: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), str(db), study, *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, list[str], str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out.splitlines(), err


def wait_paused(proc: subprocess.Popen) -> int:
    """Read the worker's lines until it pauses mid-trial; the number of that trial."""
    trial = -1
    for line in proc.stdout:
        if line.startswith("epoch "):
            trial = int(line.split()[1])
        if line.strip() == "paused":
            return trial
    raise AssertionError(f"worker ended without pausing: {proc.stderr.read()}")


def wait_stale(db: Path, grace: float, deadline_s: float = 60) -> None:
    """Poll (with a deadline) until every heartbeat in the study is older than ``grace``
    seconds by the database's own clock, the clock Optuna's staleness check reads."""
    deadline = time.monotonic() + deadline_s
    query = ("SELECT min(strftime('%s', CURRENT_TIMESTAMP) - strftime('%s', heartbeat)) "
             "FROM trial_heartbeats")
    while time.monotonic() < deadline:
        with closing(sqlite3.connect(db)) as con:
            (age,) = con.execute(query).fetchone()
        if age is not None and age > grace:
            return
        time.sleep(0.1)  # polling the database, with a deadline
    raise AssertionError(f"the heartbeats in {db} did not go stale within {deadline_s} s")


def test_storage_urls(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))  # not the working directory
    assert storage_url(None) == f"sqlite:///{tmp_path}/thetanet/thetanet-search.db"
    assert storage_url("runs/s.db") == "sqlite:///runs/s.db"
    assert storage_url("postgresql://u:pw@db:5432/s") == "postgresql+psycopg://u:pw@db:5432/s"
    assert storage_url("postgres://u@db/s") == "postgresql+psycopg://u@db/s"
    assert storage_url("mysql+pymysql://u@db/s") == "mysql+pymysql://u@db/s"
    shown = display_url(storage_url("postgresql://u:secret@db/s"))
    assert "secret" not in shown and "u:" in shown


def test_suggest_and_rebuild_from_params():
    params = {"layers": 2, "activation": "maxout", "pieces": 3, "units_0": 20, "dropout_0": 0.3,
              "units_1": 17, "dropout_1": 0.0, "input_dropout": 0.1, "l2": 1e-4,
              "optimizer": "momentum", "learning_rate": 0.01, "batch_size": 64}
    arch = suggest(optuna.trial.FixedTrial(params), SearchSpace())
    assert arch == Architecture.from_params(params)
    assert arch.hidden == (20, 17) and arch.dropout == (0.3, 0.0) and arch.pieces == 3
    model = arch.build(5, 4, seed=0)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Dropout", "Maxout", "Dropout", "Maxout", "Dense"]
    assert [m.units for m in model.layers if isinstance(m, Maxout)] == [20, 17]
    assert [d.rate for d in model.layers if isinstance(d, Dropout)] == [0.1, 0.3]
    assert model.optimizer.momentum == 0.9 and model.optimizer.nesterov
    # 0 hidden layers: softmax regression, no activation / dropout parameters drawn
    arch0 = suggest(optuna.trial.FixedTrial({"layers": 0, "input_dropout": 0.0, "l2": 1e-3,
                                             "optimizer": "adam", "learning_rate": 1e-2,
                                             "batch_size": 16}), SearchSpace())
    assert arch0.hidden == () and len(arch0.build(5, 4, seed=0).layers) == 1


def test_trials_reproducible_from_parameters(tmp_path):
    x, y = blobs(300, 1)
    xv, yv = blobs(150, 2)
    space = replace(SPACE, activations=("relu", "maxout"))
    kw = dict(space=space, n_trials=3, study_name="repro", seed=3, pruner="none",
              startup_trials=2)
    first = search_architecture(x, y, xv, yv, storage=str(tmp_path / "a.db"), **kw)
    assert first.trials_run == [0, 1, 2]
    assert first.summary["states"] == {"COMPLETE": 3}
    study = load(tmp_path / "a.db", "repro")
    for t in study.trials:  # each value again from the parameters and the study's seed
        _, value, epoch = fit_architecture(Architecture.from_params(t.params), x, y, xv, yv,
                                           seed=3, n_outputs=3, max_epochs=space.max_epochs,
                                           patience=space.patience)
        assert value == t.value and epoch + 1 == t.user_attrs["epochs"][0]
    # one worker with the same seed: the same search, trial by trial
    again = search_architecture(x, y, xv, yv, storage=str(tmp_path / "b.db"), **kw)
    assert [t.params for t in load(tmp_path / "b.db", "repro").trials] == \
        [t.params for t in study.trials]
    assert again.best_value == first.best_value
    # joining the study with another space is refused, a study never mixes two setups
    with pytest.raises(ValueError, match="another setup"):
        search_architecture(x, y, xv, yv, storage=str(tmp_path / "a.db"),
                            **{**kw, "space": SearchSpace(max_epochs=2)})
    # a study-wide budget: max_trials counts every worker's trials
    more = search_architecture(x, y, xv, yv, storage=str(tmp_path / "a.db"),
                               **{**kw, "n_trials": None, "max_trials": 4})
    assert more.trials_run == [3] and more.summary["trials"] == 4
    from thetanet.cli.nc_search import write_plots

    paths = write_plots(study, tmp_path / "plots")
    assert {p.name for p in paths} >= {"optimization_history.png", "param_importances.png"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def test_two_workers_share_a_sqlite_study(tmp_path):
    db = tmp_path / "shared.db"
    # queued trials (as --warm-start or a retry queues them): each popped by one worker only
    queued = optuna.create_study(storage=storage_url(str(db)), study_name="pair")
    for units in (5, 6, 7):
        queued.enqueue_trial({"layers": 1, "activation": "relu", "units_0": units,
                              "dropout_0": 0.1, "input_dropout": 0.0, "l2": 1e-4,
                              "optimizer": "adam", "learning_rate": 0.01, "batch_size": 32})
    procs = [worker(db, "pair", "--trials", "3", "--seed", "0") for _ in range(2)]
    results = [finish(p) for p in procs]
    runs = []
    for rc, lines, err in results:
        assert rc == 0, err
        runs.append(set(json.loads(lines[-1])["trials_run"]))
    assert len(runs[0]) == len(runs[1]) == 3 and not runs[0] & runs[1]
    study = load(db, "pair")
    assert sorted(t.number for t in study.trials) == list(range(6)) == sorted(runs[0] | runs[1])
    assert all(t.state == State.COMPLETE for t in study.trials)
    assert sorted(t.params.get("units_0") for t in study.trials[:3]) == [5, 6, 7]
    # the same --seed in both workers, still six different trials
    assert len({json.dumps(t.params, sort_keys=True) for t in study.trials}) == 6


def test_killed_worker_trial_marked_failed_and_study_continues(tmp_path):
    db = tmp_path / "kill.db"
    hb = ["--heartbeat", "1", "--grace", "2"]
    first = worker(db, "kill", "--trials", "6", "--pause-after", "8", *hb)
    killed = wait_paused(first)
    first.kill()  # SIGKILL mid-trial: no bookkeeping at all
    first.wait()
    before = load(db, "kill").trials
    assert before[killed].state == State.RUNNING
    finished = {t.number: t.value for t in before if t.state == State.COMPLETE}
    assert finished and set(finished) == set(range(killed))
    # the heartbeat's grace period must pass before the next worker calls the trial stale
    wait_stale(db, grace=2)
    rc, lines, err = finish(worker(db, "kill", "--trials", "2", *hb))
    assert rc == 0, err
    trials = load(db, "kill").trials
    assert trials[killed].state == State.FAIL
    assert {t.number: t.value for t in trials if t.number in finished} == finished
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retried) == 1 and retried[0].state == State.COMPLETE
    assert retried[0].params == trials[killed].params
    assert json.loads(lines[-1])["trials_run"] == [retried[0].number, retried[0].number + 1]
    assert not [t for t in trials if t.state in (State.RUNNING, State.WAITING)]


def test_ctrl_c_records_the_trial_and_stops(tmp_path):
    db = tmp_path / "int.db"
    proc = worker(db, "int", "--trials", "6", "--pause-after", "6")
    trial = wait_paused(proc)
    proc.send_signal(signal.SIGINT)
    proc.stdin.write("\n")  # let it go on: training stops after the current batch
    proc.stdin.flush()
    rc, lines, err = finish(proc)
    assert rc == 130, err
    assert lines[-1] == "interrupted"
    trials = load(db, "int").trials
    assert len(trials) == trial + 1
    assert trials[trial].state == State.FAIL and trials[trial].intermediate_values
    assert all(t.state == State.COMPLETE for t in trials[:trial])


def test_digits_search_cli(tmp_path, capsys):
    pytest.importorskip("sklearn")
    from thetanet.cli import main

    db = tmp_path / "digits.db"
    args = ["digits", "--search", "--trials", "2", "--epochs", "3", "--storage", str(db),
            "--json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["study"] == "digits-sklearn-digits" and doc["states"] == {"COMPLETE": 2}
    assert 0 < doc["best_value"] <= 1
    study = load(db, "digits-sklearn-digits")
    assert study.best_value == doc["best_value"]
    # the search saw the training images only (80/20 into train and val), never the test ones
    from thetanet.data.digits import load_dataset

    seen = study.user_attrs["thetanet_setup"]["data"]
    assert seen["train"] + seen["val"] == load_dataset("sklearn-digits").x_train.shape[0]
    assert seen["val"] == pytest.approx(0.2 * (seen["train"] + seen["val"]), abs=10)


def test_nc_settings_from_parameters():
    from dataclasses import replace

    from thetanet.compounds.search import (
        SPACES,
        NCSpace,
        params_from_settings,
        settings_from_params,
        suggest_settings,
    )
    from thetanet.compounds.settings import NCSettings

    space = NCSpace(features=("wordnet", "minilm-static", "words"))
    params = {"use_wordnet": True, "weight_wordnet": 3.99987, "normalize_wordnet": True,
              "use_minilm-static": True, "weight_minilm-static": 1.0,
              "use_words": False, "weight_words": 2.0, "layers": 2, "activation": "tanh",
              "dropout": 0.25, "units_0": 300, "units_1": 100, "input_dropout": 0.1,
              "l2_on": True, "l2": 1e-4, "learning_rate": 3e-3, "batch_size": 128,
              "logit_adjustment": 0.5, "use_neighbours": True, "weight_neighbours": 4.0,
              "neighbours_space": "minilm+gloss", "use_neighbours_2": False}
    base = NCSettings(seeds=[4])
    s = suggest_settings(optuna.trial.FixedTrial(params), space, base)
    assert s == settings_from_params(params, space, base)
    assert s.features == ["wordnet:normalize=true,weight=4", "minilm-static"]
    assert (s.hidden, s.activation, s.dropout, s.input_dropout) == ([300, 100], "tanh", 0.25,
                                                                      0.1)
    assert (s.l2, s.learning_rate, s.batch_size, s.logit_adjustment) == (1e-4, 3e-3, 128, 0.5)
    assert (s.max_epochs, s.patience, s.seeds) == (space.max_epochs, space.patience, [4])
    assert s.neighbours == "weight=4,exclude=shared-word"
    # a second block, drawn only when the first is on: its own weight and word space
    two = {**params, "use_neighbours_2": True, "weight_neighbours_2": 3.0,
           "neighbours_2_space": "minilm+gloss+wordnet"}
    s2 = suggest_settings(optuna.trial.FixedTrial(two), space, base)
    assert s2.neighbours == ("weight=4,exclude=shared-word; "
                             "weight=3,exclude=shared-word,space=minilm+gloss+wordnet")
    assert params_from_settings(s2, space)["weight_neighbours_2"] == 3.0
    assert settings_from_params(params_from_settings(s2, space), space, base) == s2
    assert "use_neighbours_2" not in params_from_settings(
        replace(s2, neighbours=None), space)  # the first off: nothing drawn after it
    with pytest.raises(ValueError, match="at most 2"):
        params_from_settings(replace(s2, neighbours="k=50; weight=1; weight=2"), space)
    # every extractor drawn off: the first one, so a trial always has features
    words = {**params, "use_wordnet": False, "use_minilm-static": False, "use_words": True}
    assert settings_from_params(words, space, base).features == ["words:weight=2"]
    off = {**words, "use_words": False}
    assert settings_from_params(off, space, base).features == \
        ["wordnet:normalize=true,weight=4"]
    # the quick space draws no feature choice at all
    quick = settings_from_params({"layers": 0, "learning_rate": 0.01, "batch_size": 128},
                                 SPACES["quick"], base)
    assert quick.features == ["chars"] and quick.hidden == []
    assert NCSpace.from_dict(space.to_dict()) == space
    with pytest.raises(ValueError, match="unknown search-space field"):
        NCSpace.from_dict({"layer": [0, 1]})


def test_nc_search_ctrl_c_exits_130(tmp_path, data_root):
    db = tmp_path / "nc.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "thetanet.cli", "nc", "search", "--split", "fine_lexical",
         "--space", "quick", "--trials", "50", "--storage", str(db), "--data-dir",
         str(data_root), "--cache-dir", str(tmp_path / "cache"), "-v"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # wait until it trains, then press Ctrl-C
        if line.startswith("trial ") and " step 1:" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    trials = load(db, "nc-fine_lexical").trials
    # wherever the signal landed, the running trial's bookkeeping is done: none left running
    assert trials and not [t for t in trials if t.state == State.RUNNING]
    assert len(trials) < 50


@pytest.mark.parametrize("split", ["fine_random", "fine_lexical", "coarse_random",
                                   "coarse_lexical"])
def test_recipes_are_points_of_the_full_space(split):
    """--warm-start enqueues today's recipe: its parameters give back the same settings, from
    the fresh base a study starts from (the neighbours block included)."""
    from thetanet.compounds.recipes import recipe
    from thetanet.compounds.search import SPACES, params_from_settings, settings_from_params

    r = recipe(split)
    space = SPACES["full"]
    again = settings_from_params(params_from_settings(r, space), space,
                                 NCSettings(seeds=list(r.seeds)))
    assert again == r
    assert (r.max_epochs, r.patience) == (space.max_epochs, space.patience)


def test_the_neighbours_block_is_searched_by_its_weight():
    """A trial turns the block on or off and draws its weight and word space; a block the
    space cannot express (other options, another word space) is refused, and the quick
    space never uses it."""
    from thetanet.compounds.search import (
        SPACES,
        NCSpace,
        params_from_settings,
        settings_from_params,
    )

    space, base = SPACES["full"], NCSettings()
    on = settings_from_params({"use_neighbours": True, "weight_neighbours": 7.25}, space, base)
    assert on.neighbours == "weight=7.25,exclude=shared-word"
    on.validate()
    off = settings_from_params({"use_neighbours": False, "weight_neighbours": 7.25}, space,
                               base)
    assert off.neighbours is None
    wn = settings_from_params({"use_neighbours": True, "weight_neighbours": 5.0,
                               "neighbours_space": "minilm+gloss+wordnet"}, space, base)
    assert wn.neighbours == "weight=5,exclude=shared-word,space=minilm+gloss+wordnet"
    assert params_from_settings(wn, space)["neighbours_space"] == "minilm+gloss+wordnet"
    custom = NCSettings(neighbours="weight=5,k=10")
    with pytest.raises(ValueError, match="not in the search space"):
        params_from_settings(custom, space)
    with pytest.raises(ValueError, match="not in the search space"):
        params_from_settings(NCSettings(neighbours="weight=5,space=minilm"), space)
    with pytest.raises(ValueError, match="neighbour_spaces must"):
        NCSpace.from_dict({"neighbour_spaces": ["glove"]})
    with pytest.raises(ValueError, match="not in the search space"):
        params_from_settings(NCSettings(features=["chars"], neighbours="weight=5"),
                             SPACES["quick"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    from thetanet.compounds.search import suggest_settings

    drawn = [suggest_settings(study.ask(), SPACES["quick"], base) for _ in range(5)]
    assert all(d.neighbours is None for d in drawn)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    drawn = [suggest_settings(study.ask(), space, base) for _ in range(20)]
    weights = [float(d.neighbours.split(",")[0].removeprefix("weight="))
               for d in drawn if d.neighbours]
    assert weights and all(1.0 <= w <= 32.0 for w in weights)
    assert {d.neighbours.endswith("+wordnet") for d in drawn if d.neighbours} == {True, False}
    assert any(d.neighbours is None for d in drawn)


def test_setup_differences_are_named_and_older_studies_continue(tmp_path):
    """A refused worker hears which fields differ (dotted); a setup stored before a field
    existed is compared as if it held that field's old meaning (``missing_as``)."""
    from thetanet.search import open_study

    url = storage_url(str(tmp_path / "s.db"))
    old = {"split": "x", "space": {"units": [8, 16]}, "seeds": [0]}
    open_study(url, "s", setup=old)
    now = {"split": "x", "space": {"units": [8, 16], "block": [0.0, 0.0]}, "seeds": [0]}
    with pytest.raises(ValueError, match=r"differs in: space\.block\)"):
        open_study(url, "s", setup=now)
    open_study(url, "s", setup=now, missing_as={"space": {"block": [0.0, 0.0]}})
    on = {**now, "space": {"units": [8, 32], "block": [1.0, 4.0]}, "seeds": [1]}
    with pytest.raises(ValueError, match=r"differs in: seeds, space\.block, space\.units\)"):
        open_study(url, "s", setup=on, missing_as={"space": {"block": [0.0, 0.0]}})
    # what is stored stays as it was: the old meaning is only used to compare
    assert load(tmp_path / "s.db", "s").user_attrs["thetanet_setup"] == old


def test_nc_study_from_before_the_neighbours_block_can_be_continued(tmp_path, data_root):
    """Studies created before the neighbours block have no ``neighbours`` in their space:
    they continue with a space that keeps the block off, and refuse one that turns it on."""
    from thetanet.compounds.search import SPACES, search_nc
    from thetanet.data.tratz import labels_for, load_split
    from thetanet.search import open_study

    train, val = load_split("coarse_lexical", data_root)
    quick = SPACES["quick"]
    space = quick.to_dict()
    del space["neighbours"]
    setup = {"split": "coarse_lexical", "space": space, "seeds": [0],
             "metric": "val weighted-F1", "data": {"train": len(train), "val": len(val)}}
    db = str(tmp_path / "nc.db")
    open_study(storage_url(db), "old", setup=setup)
    kw = dict(storage=db, study_name="old", cache_dir=tmp_path / "cache", pruner="none")
    run, _ = search_nc("coarse_lexical", train, val, labels_for("coarse_lexical"),
                       space=quick, n_trials=1, **kw)
    assert run == [0]
    with pytest.raises(ValueError, match=r"differs in: space\.neighbours\)"):
        search_nc("coarse_lexical", train, val, labels_for("coarse_lexical"),
                  space=replace(quick, neighbours=(1.0, 4.0)), n_trials=1, **kw)
