"""A noun-compound search shared through a real PostgreSQL server, then trained from it.

The server is :mod:`postgres_server`'s fixture (Debian's PostgreSQL in a temporary directory).
In CI (``CI`` set) this test never skips.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import postgres_server
import pytest

if os.environ.get("CI"):
    import optuna
else:
    optuna = pytest.importorskip("optuna")
    pytest.importorskip("psycopg")

postgres = postgres_server.postgres  # the fixture


def nc(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "thetanet.cli", "nc", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_workers_on_postgres_then_train_from_study(postgres, data_root, tmp_path):
    common = ["--split", "fine_lexical", "--data-dir", str(data_root), "--cache-dir",
              str(tmp_path / "cache"), "--storage", postgres]
    workers = [nc("search", *common, "--space", "quick", "--trials", "2", "--json")
               for _ in range(2)]
    runs = []
    for w in workers:
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
        runs.append(json.loads(out)["trials_run"])
    assert sorted(runs[0] + runs[1]) == [0, 1, 2, 3]
    from thetanet.search import storage_url

    study = optuna.load_study(study_name="nc-fine_lexical", storage=storage_url(postgres))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert len({json.dumps(t.params, sort_keys=True) for t in study.trials}) == 4
    best = study.best_trial

    # the best trial's settings train again to its value (same parameters, same seed)
    train = nc("train", *common, "--from-study", "--no-refit", "--quiet", "--json",
               "--out", str(tmp_path / "model"))
    out, err = train.communicate(timeout=300)
    assert train.returncode == 0, err
    assert f"study 'nc-fine_lexical' trial {best.number}" in err
    assert json.loads(out)["fine_lexical"]["val"]["weighted_f1"] == best.value
    saved = json.loads((tmp_path / "model" / "nc.json").read_text())
    assert saved["settings"]["hidden"] == best.user_attrs["settings"]["hidden"]
    assert saved["settings"]["features"] == best.user_attrs["settings"]["features"]

    show = nc("search", *common, "--show", "--json", "--plots", str(tmp_path / "plots"))
    out, err = show.communicate(timeout=120)
    assert show.returncode == 0, err
    doc = json.loads(out)
    assert doc["states"] == {"COMPLETE": 4} and doc["best_value"] == best.value
    assert (tmp_path / "plots" / "optimization_history.png").stat().st_size > 1000
