"""Offline data: ``thetanet data fetch --from DIR|URL`` (a copy of a data root, verified by
the published checksums; ``$THETANET_DATA_FROM`` when no option says where), one message
listing every missing file, hints repeating the options given — and tests that find the
fetched data in a fresh HOME exactly as the CLI does."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from thetanet.data import tratz

REPO = Path(__file__).resolve().parents[1]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator:
    """``serve(folder)`` → the URL of an HTTP server on 127.0.0.1 serving ``folder``."""
    servers = []

    def start(folder: Path) -> str:
        srv = ThreadingHTTPServer(("127.0.0.1", 0),
                                  functools.partial(_Quiet, directory=str(folder)))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def fresh_env(tmp_path) -> dict[str, str]:
    """A fresh HOME, no THETANET_DATA / XDG_CACHE_HOME / THETANET_DATA_FROM: the user data root
    is HOME/.cache/thetanet."""
    env = {k: v for k, v in os.environ.items()  # (PYTEST_ADDOPTS: no outer options)
           if k not in ("THETANET_DATA", "XDG_CACHE_HOME", "THETANET_DATA_FROM",
                        "PYTEST_ADDOPTS")}
    env["HOME"] = str(tmp_path / "home")
    env["MPLCONFIGDIR"] = str(tmp_path / "mpl")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return env


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "thetanet.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env, cwd=cwd)


def _tratz_copy(data_root: Path, dest: Path) -> Path:
    for split in tratz.SPLITS:
        (dest / "tratz" / split).mkdir(parents=True)
        for part in ("train", "val"):
            shutil.copy(data_root / "tratz" / split / f"{part}.tsv", dest / "tratz" / split)
    return dest


def test_make_run_then_make_test_in_a_fresh_home(data_root, serve, fresh_env, tmp_path):
    """A data root served over HTTP in its own layout fills the user data root through
    THETANET_DATA_FROM (as `make run` passes it on); a pytest run with the same environment
    then finds the Tratz data there, and skips only MNIST, saying why."""
    url = serve(data_root)
    r = _cli("data", "fetch", "tratz", env={**fresh_env, "THETANET_DATA_FROM": url},
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    user_root = tmp_path / "home" / ".cache" / "thetanet"
    assert f"fetched from {url} ($THETANET_DATA_FROM) into {user_root / 'tratz'}" in r.stdout
    for split in tratz.SPLITS:
        for part in ("train", "val"):
            got = (user_root / "tratz" / split / f"{part}.tsv").read_bytes()
            assert got == (data_root / "tratz" / split / f"{part}.tsv").read_bytes()
    t = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(REPO),
         str(REPO / "tests" / "helpers" / "data_probe.py"),
         str(REPO / "tests" / "test_digits.py") + "::test_mnist_t10k_split"],
        capture_output=True, text=True, timeout=300, env=fresh_env, cwd=REPO)
    assert "1 passed, 2 skipped" in t.stdout, t.stdout[-3000:]
    last = t.stdout.strip().splitlines()[-1]
    assert last.startswith(f"skipped 2: 2 × MNIST t10k not in data root {user_root}, from "
                           "the default"), last


def test_from_a_folder_is_verified_by_the_checksums(data_root, fresh_env, tmp_path):
    copy = _tratz_copy(data_root, tmp_path / "copy")
    bad = copy / "tratz" / "fine_lexical" / "val.tsv"
    bad.write_bytes(bad.read_bytes() + b"olive\toil\tOTHER\n")  # well-formed, not published
    root = tmp_path / "root"
    r = _cli("data", "fetch", "tratz", "--split", "fine_lexical", "--data-dir", str(root),
             "--from", str(copy), env=fresh_env, cwd=tmp_path)
    assert r.returncode == 2 and "checksum mismatch" in r.stderr and "Traceback" not in r.stderr
    assert not (root / "tratz" / "fine_lexical" / "val.tsv").exists()
    shutil.copy(data_root / "tratz" / "fine_lexical" / "val.tsv", bad)
    r = _cli("data", "fetch", "tratz", "--split", "fine_lexical", "--data-dir", str(root),
             "--from", str(copy), env=fresh_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert tratz.load_split("fine_lexical", root)[1].labels == tratz.load_split(
        "fine_lexical", data_root)[1].labels


def test_offline_one_message_lists_every_missing_file(fresh_env, tmp_path):
    root = tmp_path / "root"
    (root / "tratz" / "fine_random").mkdir(parents=True)
    (root / "tratz" / "fine_random" / "val.tsv").write_text("olive\toil\tOTHER\n")
    r = _cli("data", "fetch", "tratz", "--with-test", "--data-dir", str(root), "--from",
             str(tmp_path / "empty"), env=fresh_env, cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0]
    missing = [f"{s}/{p}.tsv" for s in tratz.SPLITS for p in ("train", "val", "test")
               if (s, p) != ("fine_random", "val")]
    assert f"Missing {len(missing)} file(s) under {root / 'tratz'}/: {', '.join(missing)}." \
           in line
    assert f"`thetanet data fetch tratz --with-test --data-dir {root}` when online" in line
    assert "--from DIR|URL" in line and "THETANET_DATA_FROM" in line


def test_a_missing_split_names_the_offline_way(fresh_env, tmp_path):
    r = _cli("nc", "train", "--split", "coarse_random", "--data-dir", str(tmp_path / "none"),
             env=fresh_env, cwd=tmp_path)
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert r.returncode == 2 and len(errors) == 1, r.stderr
    assert "thetanet data fetch tratz --data-dir" in errors[0] and "--from DIR|URL" in errors[0]


def test_mnist_from_a_copy_of_a_data_root(mnist_root, fresh_env, tmp_path):
    root = tmp_path / "root"
    r = _cli("data", "fetch", "mnist", "--split", "t10k", "--data-dir", str(root), "--from",
             str(mnist_root), env=fresh_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    from thetanet.data import idx

    assert idx.mnist_available("t10k", root)
    images, labels = idx.read_mnist("t10k", root)
    assert np_equal(images, idx.read_mnist("t10k", mnist_root)[0]) and labels.shape == (10000,)


def np_equal(a, b) -> bool:
    return a.shape == b.shape and bool((a == b).all())
