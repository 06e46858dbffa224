"""The arena under load: concurrent submissions over HTTP to a real ``thetanet arena serve``.

Phase 1: 10 teams send 5 submissions each, all 50 at once (daily limit 6): every one must be
scored and stored exactly once. Phase 2: each team sends 3 more at once, where 1 is left of its
day: exactly 10 may count, 20 must be refused (429). Phase 3: 10 phase-1 requests replayed
(same submission id): all refused (409). The database is then checked row by row: per team
slots 1..6, every id once, every stored score the one the scorer gives that file. Client-side
latency of phase 1 (upload → scored answer) is written down as p50 / p95.

    python benchmarks/arena_load.py [--db URL] [--out benchmarks/results/arena_load.md]

Gold: the Tratz fine_random val file when THETANET_DATA holds it, else 1,000 synthetic
compounds. Writes benchmarks/results/arena_load.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import select

from thetanet.arena import storage
from thetanet.arena.schema import connect, submissions, teams
from thetanet.arena.scoring import load_gold, score_upload
from thetanet.data.tratz import FINE_LABELS

TEAMS, PER_TEAM, EXTRA, LIMIT = 10, 5, 3, 6


def gold_file(tmp: Path) -> Path:
    root = os.environ.get("THETANET_DATA")
    source = Path(root) / "tratz" / "fine_random" / "val.tsv" if root else None
    target = tmp / "gold.tsv"
    if source is not None and source.is_file():
        target.write_bytes(source.read_bytes())
    else:
        rng = np.random.default_rng(0)
        target.write_text("".join(f"m{i}\th{i}\t{rng.choice(FINE_LABELS)}\n"
                                  for i in range(1000)), encoding="utf-8")
    return target


def noisy(gold: Path, wrong: float, seed: int) -> bytes:
    """The gold file with a seeded share of its relations changed."""
    rng = np.random.default_rng(seed)
    out = []
    for line in gold.read_text(encoding="utf-8").splitlines():
        mod, head, rel = line.split("\t")
        if rng.random() < wrong:
            rel = FINE_LABELS[int(rng.integers(len(FINE_LABELS)))]
        out.append(f"{mod}\t{head}\t{rel}\n")
    return "".join(out).encode()


def post(url: str, token: str, nonce: str, data: bytes) -> tuple[int, float, dict]:
    request = urllib.request.Request(url + "/api/submissions", data=data, method="POST",
                                     headers={"Authorization": f"Bearer {token}",
                                              "X-Submission-Id": nonce})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    return status, time.perf_counter() - started, json.loads(body)


def burst(url: str, jobs: list[tuple[str, str, bytes]]) -> list[tuple[int, float, dict]]:
    """All jobs at once: each thread waits at a barrier, then posts."""
    barrier = threading.Barrier(len(jobs))

    def one(job: tuple[str, str, bytes]) -> tuple[int, float, dict]:
        barrier.wait()
        return post(url, *job)
    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(one, jobs))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(gold: Path, db: str, port: int, log: Path) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "thetanet.cli", "arena", "serve", "--gold", str(gold), "--db",
         db, "--port", str(port), "--daily-limit", str(LIMIT)],
        stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/leaderboard", timeout=2)
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the arena did not start:\n{log.read_text()}") from None
            time.sleep(0.1)


def check(db: str, gold_path: Path, files: dict[str, bytes], names: dict[str, str]) -> dict:
    """Row by row: slots, ids, and each stored score equal to the scorer's for its file."""
    engine = connect(db)
    gold = load_gold(gold_path)
    expected = {nonce: score_upload(gold, data).public_f1 for nonce, data in files.items()}
    with engine.begin() as conn:
        rows = conn.execute(select(submissions.c.nonce, submissions.c.slot, submissions.c.day,
                                   submissions.c.public_f1, teams.c.name)
                            .join(teams, teams.c.id == submissions.c.team_id)).all()
    nonces = [r.nonce for r in rows]
    per_team: dict[str, list[int]] = {}
    for r in rows:
        per_team.setdefault(r.name, []).append(r.slot)
        assert r.public_f1 == expected[r.nonce], f"{r.nonce}: stored score differs"
        assert names[r.nonce] == r.name, f"{r.nonce}: stored for the wrong team"
    assert len(set(nonces)) == len(nonces), "a submission was stored twice"
    days = {r.day for r in rows}
    for name, slots in per_team.items():  # one UTC day (a run across midnight would split)
        assert len(days) > 1 or sorted(slots) == list(range(1, LIMIT + 1)), (name, slots)
    return {"rows": len(rows), "teams": len(per_team)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=None, help="database URL (default: a new SQLite file)")
    parser.add_argument("--out", default="benchmarks/results/arena_load.md")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="arena-load-"))
    db = args.db or str(tmp / "arena.db")
    gold = gold_file(tmp)
    engine = connect(db)
    tokens = [storage.add_team(engine, f"Team {i:02d}")[1] for i in range(TEAMS)]
    engine.dispose()
    port = free_port()
    server = serve(gold, db, port, tmp / "server.log")
    url = f"http://127.0.0.1:{port}"
    files: dict[str, bytes] = {}
    names: dict[str, str] = {}

    def job(team: int, k: int) -> tuple[str, str, bytes]:
        nonce = uuid.uuid4().hex
        files[nonce] = noisy(gold, 0.2 + 0.05 * k + 0.01 * team, 100 * team + k)
        names[nonce] = f"Team {team:02d}"
        return tokens[team], nonce, files[nonce]
    try:
        first = [job(t, k) for t in range(TEAMS) for k in range(PER_TEAM)]
        t0 = time.perf_counter()
        phase1 = burst(url, first)
        wall1 = time.perf_counter() - t0
        phase2 = burst(url, [job(t, PER_TEAM + k) for t in range(TEAMS) for k in range(EXTRA)])
        phase3 = burst(url, first[::PER_TEAM])  # one replay per team
    finally:
        server.terminate()
        server.wait(30)
    status1 = [s for s, _, _ in phase1]
    status2 = sorted(s for s, _, _ in phase2)
    status3 = [s for s, _, _ in phase3]
    assert status1 == [200] * len(first), status1
    assert status2 == [200] * TEAMS + [429] * (TEAMS * (EXTRA - 1)), status2
    assert status3 == [409] * TEAMS, status3
    found = check(db, gold, files, names)
    assert found["rows"] == TEAMS * LIMIT, found
    lat = np.array([t for _, t, _ in phase1]) * 1000
    write(args.out, gold, db, lat, wall1, status2, found)


def write(out: str, gold: Path, db: str, lat: np.ndarray, wall: float, status2: list[int],
          found: dict) -> None:
    n_gold = sum(1 for _ in gold.open(encoding="utf-8"))
    backend = db.split(":", 1)[0] if "://" in db else "sqlite (WAL, one file)"
    text = f"""# The arena under load (benchmarks/arena_load.py)

Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {os.cpu_count()} \
CPUs (shared with other work: load average {os.getloadavg()[0]:.1f} after the run), Python \
{platform.python_version()}; one `thetanet arena serve` \
process (uvicorn), storage {backend}; test set of {n_gold:,} compounds (gold: {gold.name}).

| phase | requests | outcome |
|---|---|---|
| 1: 10 teams × 5 submissions, all at once (limit {LIMIT}/day) | 50 | 50 scored and stored |
| 2: 10 teams × 3 more at once (1 left each) | 30 | {status2.count(200)} stored, \
{status2.count(429)} refused (daily limit) |
| 3: one phase-1 request per team replayed | 10 | 10 refused (replay), none stored |

Database afterwards: {found['rows']} submissions from {found['teams']} teams, each team's slots \
1–{LIMIT}, every submission id once, every stored public score equal to the scorer's for its \
file: none lost, none counted twice, the daily limit held.

Phase 1 latency per submission (client side, upload → scored answer, 50 concurrent):
p50 {np.percentile(lat, 50):.0f} ms, p95 {np.percentile(lat, 95):.0f} ms, max {lat.max():.0f} \
ms; all 50 answered in {wall:.2f} s.
"""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
