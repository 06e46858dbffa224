"""Old against new: ``thetanet nc train`` wall time and peak RSS per split, ``nc predict`` rate.

    python benchmarks/nc_speed.py [--old DIR] [--splits ...] [--repeats N]
                                  [--predict-lines N] [--smoke]

Issue 30, goals 1 and 4. "old" is a checkout of commit 0297dda (made by this script with
``git worktree add --detach`` in a temporary folder and removed afterwards, or ``--old DIR``
naming a checkout whose ``src`` to run); "new" is this checkout. Each version runs in its own
subprocess with its own ``src`` first on ``PYTHONPATH`` and its own feature cache, filled
before any timing (one untimed ``nc train --max-epochs 1 --no-refit`` per split), so the
timed runs have the features cached. The timed runs alternate old, new, old, new … so a
change of load hits both alike. Peak RSS is the subprocess's own ``ru_maxrss`` (``os.wait4``).

Prediction: fine_lexical's model from each version's timed run predicts the same stream of
compounds (drawn at random, seeded, from the Tratz vocabulary) twice, a small and a large
input; compounds/s is the marginal rate between the two (start-up and loading paid once).

Writes ``benchmarks/results/nc_speed.md`` (``--smoke``: ``nc_speed_smoke.md``) naming the
CPU, its cores and the load. ``--smoke``: coarse_lexical only, short prediction streams; a
check that the script works, not a measurement. A full run (four splits, one repeat,
200,000 predicted lines) takes ~10 minutes on an idle 2-core machine.
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
OLD_COMMIT = "0297dda"
SPLITS = ("fine_random", "fine_lexical", "coarse_random", "coarse_lexical")
TARGET_TIME, TARGET_RSS, TARGET_RATE = 0.5, 0.6, 5000.0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(src: Path, args: list[str], *, stdin_null: bool = True) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MiB, stderr tail) of ``python -m thetanet.cli ARGS`` with
    ``src`` first on the path; raises on failure."""
    env = dict(os.environ, PYTHONPATH=str(src))
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "thetanet.cli", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=err,
                                stdin=subprocess.DEVNULL if stdin_null else None)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        err.seek(0)
        tail = err.read().decode(errors="replace")[-3000:]
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed ({src}): thetanet {' '.join(args)}\n{tail}")
    return wall, usage.ru_maxrss / 1024, tail  # Linux: KiB


def vocabulary(data: Path) -> list[str]:
    words: set[str] = set()
    for split in SPLITS:
        for part in ("train", "val"):
            text = (data / "tratz" / split / f"{part}.tsv").read_text(encoding="utf-8")
            words.update(w for line in text.splitlines() for w in line.split("\t")[:2])
    return sorted(words)


def write_compounds(path: Path, words: list[str], n: int, seed: int) -> None:
    rnd = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for start in range(0, n, 100_000):
            fh.write("".join(f"{rnd.choice(words)}\t{rnd.choice(words)}\n"
                             for _ in range(min(100_000, n - start))))


def old_checkout(tmp: Path, given: Path | None) -> tuple[Path, bool]:
    """The old version's root, and whether this script created it (as a git worktree)."""
    if given is not None:
        return given.resolve(), False
    where = tmp / "old"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where),
                    OLD_COMMIT], check=True, capture_output=True)
    return where, True


def train_args(split: str, data: Path, cache: Path, out: Path, *extra: str) -> list[str]:
    return ["nc", "train", "--split", split, "--quiet", "--data-dir", str(data),
            "--cache-dir", str(cache), "--out", str(out), *extra]


def bench_train(versions: dict[str, Path], splits: list[str], repeats: int, data: Path,
                tmp: Path) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Per (version, split): (wall s, peak RSS MiB) of each timed run, interleaved."""
    for name, root in versions.items():  # fill each version's feature cache, untimed
        for split in splits:
            print(f"[cache] {name} {split} …", file=sys.stderr, flush=True)
            run(root / "src", train_args(split, data, tmp / f"cache-{name}", tmp / "scratch",
                                         "--max-epochs", "1", "--no-refit"))
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in range(repeats):
        for split in splits:
            for name, root in versions.items():
                wall, rss, _ = run(root / "src", train_args(
                    split, data, tmp / f"cache-{name}", tmp / f"model-{name}-{split}"))
                results.setdefault((name, split), []).append((wall, rss))
                print(f"[train {r + 1}/{repeats}] {name:3} {split:15} {wall:7.1f} s "
                      f"{rss:7.0f} MiB   ({uptime().split('load')[-1].strip()})",
                      file=sys.stderr, flush=True)
    return results


def bench_predict(versions: dict[str, Path], data: Path, tmp: Path, lines: int
                  ) -> dict[str, tuple[float, float, float]]:
    """Per version: (compounds/s marginal, peak RSS MiB at ``lines``, wall s at ``lines``)."""
    words = vocabulary(data)
    small = max(1000, lines // 10)
    inputs = {}
    for n in (small, lines):
        inputs[n] = tmp / f"in-{n}.tsv"
        write_compounds(inputs[n], words, n, seed=n)
    out: dict[str, tuple[float, float, float]] = {}
    for name, root in versions.items():
        walls = {}
        for n in (small, lines):
            args = ["nc", "predict", "--model", str(tmp / f"model-{name}-fine_lexical"),
                    "--cache-dir", str(tmp / f"cache-{name}"), "--input", str(inputs[n]),
                    "--output", str(tmp / "predicted.tsv")]
            walls[n], rss, _ = run(root / "src", args)
            written = sum(1 for _ in open(tmp / "predicted.tsv", "rb"))
            if written != n:
                raise SystemExit(f"{name}: nc predict wrote {written} lines for {n}")
            print(f"[predict] {name:3} {n:>9,} lines {walls[n]:7.1f} s {rss:7.0f} MiB",
                  file=sys.stderr, flush=True)
        out[name] = ((lines - small) / max(walls[lines] - walls[small], 1e-9), rss, walls[lines])
    return out


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def report(train: dict[tuple[str, str], list[tuple[float, float]]], splits: list[str],
           predict: dict[str, tuple[float, float, float]] | None, lines: int,
           load_before: str, load_after: str, smoke: bool, old_label: str) -> str:
    rows = [
        "# nc train / nc predict: old (" + old_label + ") against new (this checkout)",
        "",
        "`python benchmarks/nc_speed.py" + (" --smoke" if smoke else "") + "` (issue 30, goals 1 "
        "and 4). Features cached for both; old and new interleaved; each number the mean of the "
        "timed runs; peak RSS of the `thetanet` process itself.",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
        f"Load before: `{load_before}`; after: `{load_after}`.",
        "" if not smoke else "\n**Smoke run** (one small split, short streams): checks that "
        "the script works; not a measurement.\n",
        "| split | old wall (s) | new wall (s) | new ÷ old | old peak RSS (MiB) "
        "| new peak RSS (MiB) | new ÷ old |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    verdict = []
    for split in splits:
        ow, orss = (mean([t[i] for t in train["old", split]]) for i in (0, 1))
        nw, nrss = (mean([t[i] for t in train["new", split]]) for i in (0, 1))
        rows.append(f"| {split} | {ow:.1f} | {nw:.1f} | {nw / ow:.2f} | {orss:.0f} | "
                    f"{nrss:.0f} | {nrss / orss:.2f} |")
        verdict.append(nw / ow <= TARGET_TIME and nrss / orss <= TARGET_RSS)
    rows += ["", f"Goal 1 (every split ≤ {TARGET_TIME}× old wall time and ≤ {TARGET_RSS}× old "
                 f"peak RSS): **{'met' if all(verdict) else 'NOT met'}**.", ""]
    if predict:
        model = "coarse_lexical's model (smoke)" if smoke else "fine_lexical's model"
        rows += [f"`nc predict`, {model}, {lines:,} random compounds "
                 "(marginal rate between a tenth of that and all of it):", "",
                 "| version | compounds/s | wall (s) | peak RSS (MiB) |", "|---|---:|---:|---:|"]
        rows += [f"| {name} | {rate:,.0f} | {wall:.1f} | {rss:.0f} |"
                 for name, (rate, rss, wall) in predict.items()]
        ok = predict["new"][0] >= TARGET_RATE
        rows += ["", f"Goal 4 (≥ {TARGET_RATE:,.0f} compounds/s): **{'met' if ok else 'NOT met'}**"
                     "; memory bounded: compare peak RSS across `--predict-lines` sizes "
                     "(e.g. 1000000).", ""]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", type=Path, default=None, help=f"old checkout (default: {OLD_COMMIT})")
    p.add_argument("--splits", nargs="*", default=list(SPLITS))
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--predict-lines", type=int, default=200_000)
    p.add_argument("--smoke", action="store_true", help="coarse_lexical only, short streams")
    p.add_argument("--data-dir", type=Path, default=Path(os.environ.get(
        "THETANET_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    splits = ["coarse_lexical"] if args.smoke else args.splits
    lines = 20_000 if args.smoke else args.predict_lines
    out = args.out or ROOT / "benchmarks" / "results" / (
        "nc_speed_smoke.md" if args.smoke else "nc_speed.md")
    load_before = uptime()
    with tempfile.TemporaryDirectory(prefix="nc-speed-") as tmp_name:
        tmp = Path(tmp_name)
        old, created = old_checkout(tmp, args.old)
        try:
            versions = {"old": old, "new": ROOT}
            train = bench_train(versions, splits, args.repeats, args.data_dir, tmp)
            predict = None
            if "fine_lexical" in splits or args.smoke:
                if args.smoke:  # the smoke run's models are coarse_lexical's
                    for name in versions:
                        os.symlink(tmp / f"model-{name}-coarse_lexical",
                                   tmp / f"model-{name}-fine_lexical")
                predict = bench_predict(versions, args.data_dir, tmp, lines)
        finally:
            if created:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(old)], check=False, capture_output=True)
    text = report(train, splits, predict, lines, load_before, uptime(), args.smoke,
                  OLD_COMMIT if args.old is None else str(args.old))
    from thetanet.files import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
