"""Streaming prediction: peak memory and time per line of ``thetanet nc predict`` (issue 13).

    python benchmarks/predict_stream.py [--model DIR] [--lines 10000,100000,1000000]

Trains a model on coarse_lexical with its recipe (``--no-refit``: seconds) unless ``--model``
is given, generates compounds by drawing modifier and head at random (seeded) from the Tratz
vocabulary (every word of the four splits' train and val files), and runs ``thetanet nc
predict --input FILE --output FILE`` as a subprocess for each size. The peak RSS of that very
process comes from ``os.wait4``; the time per line is reported raw (the acceptance measure)
and marginal (between two sizes: the streaming cost alone, without start-up and loading the
model and WordNet). Writes benchmarks/results/predict_stream.md.

Acceptance (issue 13): 1,000,000 lines complete with peak RSS < 1 GB and a time per line
within 1.5× of the 10,000-line run.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "predict_stream.md"
SPLITS = ("fine_random", "fine_lexical", "coarse_random", "coarse_lexical")


def vocabulary(data_root: Path) -> list[str]:
    words: set[str] = set()
    for split in SPLITS:
        for part in ("train", "val"):
            for line in (data_root / "tratz" / split / f"{part}.tsv").read_text(
                    encoding="utf-8").splitlines():
                words.update(line.split("\t")[:2])
    return sorted(words)


def write_compounds(path: Path, words: list[str], n: int, seed: int = 0) -> None:
    rnd = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for start in range(0, n, 100_000):
            fh.write("".join(f"{rnd.choice(words)}\t{rnd.choice(words)}\n"
                             for _ in range(min(100_000, n - start))))


def thetanet(*args: str) -> list[str]:
    return [sys.executable, "-m", "thetanet.cli", *args]


def measure(model: Path, cache: Path, src: Path, out: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one ``nc predict`` process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(thetanet("nc", "predict", "--model", str(model), "--cache-dir",
                                     str(cache), "--input", str(src), "--output", str(out)),
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"nc predict failed:\n{err[-3000:]}")
    return wall, usage.ru_maxrss / 1024  # Linux: KiB


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=None, help="a trained nc model directory")
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--lines", default="10000,100000,1000000")
    p.add_argument("--data-dir", type=Path, default=Path(os.environ.get(
        "THETANET_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.lines.split(",")]
    with tempfile.TemporaryDirectory(prefix="predict-stream-") as tmp_name:
        tmp = Path(tmp_name)
        cache = args.cache_dir or tmp / "cache"
        model = args.model
        if model is None:
            model = tmp / "model"
            print("training a coarse_lexical model (--no-refit) ...", file=sys.stderr)
            subprocess.run(thetanet("nc", "train", "--split", "coarse_lexical", "--no-refit",
                                    "--quiet", "--data-dir", str(args.data_dir), "--cache-dir",
                                    str(cache), "--out", str(model)), check=True,
                           stdout=subprocess.DEVNULL)
        words = vocabulary(args.data_dir)
        rows = []
        load = os.getloadavg()[0]
        for n in sizes:
            src = tmp / f"in-{n}.tsv"
            write_compounds(src, words, n, seed=n)
            wall, rss = measure(model, cache, src, tmp / "out.tsv")
            written = sum(1 for _ in open(tmp / "out.tsv", "rb"))
            assert written == n, (written, n)
            rows.append((n, wall, rss))
            print(f"{n:>9,} lines: {wall:8.1f} s, peak RSS {rss:7.1f} MiB", file=sys.stderr)
            src.unlink()
    base, big = rows[0], rows[-1]
    lines = [
        "# Streaming prediction (`thetanet nc predict`)",
        "",
        "`python benchmarks/predict_stream.py` — compounds drawn at random from the Tratz "
        f"vocabulary ({len(words):,} words), a coarse_lexical model with its recipe "
        "(`--no-refit`), `nc predict --input FILE --output FILE` run as a subprocess; peak RSS "
        "of that process from `os.wait4`. The time includes start-up and loading the model "
        "and WordNet (a few seconds, paid once); the marginal time per line, between two "
        "sizes, is the streaming cost alone.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average at the start {load:.2f} (a machine "
        "shared with other jobs: timings are indicative).",
        "",
        "| lines | wall (s) | µs / line | marginal µs / line (from the size above) "
        "| peak RSS (MiB) |",
        "|---:|---:|---:|---:|---:|",
    ]
    prev = None
    for n, wall, rss in rows:
        marginal = "—" if prev is None else f"{(wall - prev[1]) / (n - prev[0]) * 1e6:,.0f}"
        lines.append(f"| {n:,} | {wall:.1f} | {wall / n * 1e6:,.0f} | {marginal} | {rss:.0f} |")
        prev = (n, wall)
    ratio = (big[1] / big[0]) / (base[1] / base[0])
    ok = big[2] < 1024 and ratio <= 1.5
    lines += ["", f"Acceptance (issue 13: {big[0]:,} lines with peak RSS < 1 GiB, time per line "
                  f"≤ 1.5× the {base[0]:,}-line run's): **{'met' if ok else 'NOT met'}** — "
                  f"{big[2]:.0f} MiB, {ratio:.2f}×.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from thetanet.files import atomic_write_text

    atomic_write_text(args.out, "\n".join(lines))
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
