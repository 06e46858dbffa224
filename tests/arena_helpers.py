"""Shared pieces of the arena tests: gold files (Tratz val, or synthetic), predictions with a
seeded share of wrong relations, and an ``arena serve`` subprocess polled until it answers."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from thetanet.data.paths import data_root as cli_data_root
from thetanet.data.tratz import FINE_LABELS


def synthetic_gold(path: Path, n: int = 300, seed: int = 0) -> Path:
    """``n`` made-up compounds with fine-grained relations drawn with a seed."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(FINE_LABELS[:12], size=n)
    path.write_text("".join(f"mod{i}\thead{i % 37}\t{lab}\n" for i, lab in enumerate(labels)),
                    encoding="utf-8")
    return path


def tratz_gold(tmp: Path, split: str = "fine_random") -> Path | None:
    """A copy of a Tratz split's val file (the test set stand-in), or None without the data."""
    source = cli_data_root() / "tratz" / split / "val.tsv"  # found as the CLI finds it
    if not source.is_file():
        return None
    target = tmp / f"gold_{split}.tsv"
    target.write_bytes(source.read_bytes())
    return target


def predictions(gold: Path, wrong: float, seed: int, target: Path) -> Path:
    """The gold file with a seeded share ``wrong`` of its relations replaced by another."""
    rng = np.random.default_rng(seed)
    lines = gold.read_text(encoding="utf-8").splitlines()
    out = []
    for line in lines:
        mod, head, rel = line.split("\t")
        if rng.random() < wrong:
            rel = FINE_LABELS[(FINE_LABELS.index(rel) + 1 + int(rng.integers(5)))
                              % len(FINE_LABELS)] if rel in FINE_LABELS else "OTHER"
        out.append(f"{mod}\t{head}\t{rel}\n")
    target.write_text("".join(out), encoding="utf-8")
    return target


def arena(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """``thetanet arena ARGS`` in a child process."""
    return subprocess.run([sys.executable, "-m", "thetanet.cli", "arena", *args], input=stdin,
                          capture_output=True, timeout=120)


def add_team(db: str, name: str) -> str:
    """Add a team with the CLI; its token is the last word printed."""
    done = arena("team", "add", name, "--db", db)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().split()[-1]


@contextmanager
def served(gold: Path, db: str, port: int, log: Path, *extra: str) -> Iterator[str]:
    """``thetanet arena serve`` on 127.0.0.1:port until the block ends; yields its address."""
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "thetanet.cli", "arena", "serve", "--gold", str(gold),
             "--db", db, "--port", str(port), *extra], stdout=sink, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, log.read_text()
                try:
                    urllib.request.urlopen(url + "/api/leaderboard", timeout=2).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "the arena did not start in 60 s"
                    time.sleep(0.1)  # polling the server's readiness, with a deadline
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


def concurrent_records(engine, team, score, n: int, limit: int) -> list[int]:
    """``n`` threads record a submission for ``team`` at once (a barrier starts them together)
    under a daily ``limit``: the slots stored, or the HTTP status of each refusal."""
    from thetanet.arena import storage

    barrier, outcomes = threading.Barrier(n), []

    def submit(i: int) -> None:
        barrier.wait()
        try:
            outcomes.append(storage.record(engine, team, f"n{i}", score, limit=limit))
        except storage.Refused as exc:
            outcomes.append(exc.status)
    threads = [threading.Thread(target=submit, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes
