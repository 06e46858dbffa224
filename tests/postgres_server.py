"""A throw-away PostgreSQL server for the tests that need one (a shared test helper).

The ``postgres`` fixture runs Debian's PostgreSQL (installed with apt-get when missing and we
are root) in a temporary directory: ``initdb`` as the ``postgres`` user (it refuses root), the
server on 127.0.0.1 and a free port, its socket in the temporary directory; stopped and removed
afterwards. A test module uses it as ``postgres = postgres_server.postgres``. In CI (``CI``
set) a missing server fails the test instead of skipping it.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

__all__ = ["free_port", "postgres", "skip_or_fail"]


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the PostgreSQL tests: {reason}")
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
        skip_or_fail("PostgreSQL is not installed (as root: apt-get install postgresql)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        subprocess.run(cmd, env=env, check=True, capture_output=True)


def free_port() -> int:
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
    data, port = root / "data", free_port()
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
