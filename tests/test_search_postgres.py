"""A noun-compound search shared through a real PostgreSQL server, then trained from it.

The fixture runs Debian's PostgreSQL (installed with apt-get when missing and we are root)
in a temporary directory: ``initdb`` as the ``postgres`` user (it refuses root), the server
on 127.0.0.1 and a free port, its socket in the temporary directory; stopped and removed
afterwards. In CI (``CI`` set) this test never skips.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

if os.environ.get("CI"):
    import optuna
else:
    optuna = pytest.importorskip("optuna")
    pytest.importorskip("psycopg")


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the PostgreSQL test: {reason}")
    pytest.skip(reason)


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _install_postgresql() -> None:
    """Debian's server package (root only); the package's own cluster is not used."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        _skip_or_fail("PostgreSQL is not installed (as root: apt-get install postgresql)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        subprocess.run(cmd, env=env, check=True, capture_output=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A throw-away PostgreSQL server: yields its SQLAlchemy-style URL."""
    if _bindir() is None:
        _install_postgresql()
    bindir = _bindir()
    assert bindir is not None, "initdb not found after installing postgresql"
    root = Path(tempfile.mkdtemp(prefix="thetanet-pg-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:  # initdb and the server refuse to run as root
        shutil.chown(root, "postgres", "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    try:
        subprocess.run([*as_owner, str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                        "-U", "postgres", "--no-sync"], check=True, capture_output=True)
        # fsync off: a test database; sockets in our directory, TCP on loopback only
        subprocess.run([*as_owner, str(bindir / "pg_ctl"), "-D", str(data), "-w",
                        "-l", str(root / "server.log"),
                        "-o", f"-h 127.0.0.1 -p {port} -k {root} -F", "start"],
                       check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_owner, str(bindir / "pg_ctl"), "-D", str(data), "-m",
                            "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


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
