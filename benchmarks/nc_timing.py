"""Timing of the noun-compound main job (issue acceptance: < 60 s each on 2 cores).

1. First feature extraction (empty cache) of every compound in the four splits' train + val
   (wordnet + minilm-static + wordnet-gloss: every feature of the recipes), in a fresh
   process.
2. ``thetanet nc train --split S`` with the features cached, per split, wall-clock of the
   whole command (selection fit + refit on train+val + save).

Writes ``benchmarks/results/nc_timing.md``.   python benchmarks/nc_timing.py [--splits ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from thetanet.files import atomic_write_text

EXTRACT = """
import sys, time
t0 = time.perf_counter()
from thetanet.compounds.features import build_features
from thetanet.data.tratz import SPLITS, load_split
mods, heads, seen = [], [], set()
for split in SPLITS:
    for part in load_split(split):
        for m, h in zip(part.modifiers, part.heads):
            if (m, h) not in seen:
                seen.add((m, h)); mods.append(m); heads.append(h)
t1 = time.perf_counter()
fs = build_features(["wordnet", "minilm-static", "wordnet-gloss"], (mods, heads),
                    cache_dir=sys.argv[1])
x = fs.transform_parts(mods, heads)
t2 = time.perf_counter()
print(len(mods), round(t2 - t1, 2), round(t2 - t0, 2))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", nargs="*",
                    default=["fine_random", "fine_lexical", "coarse_random", "coarse_lexical"])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "nc_timing.md"))
    args = ap.parse_args()
    env = dict(os.environ)
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        r = subprocess.run([sys.executable, "-c", EXTRACT, cache], capture_output=True,
                           text=True, env=env, check=True)
        n, t_feat, t_all = r.stdout.split()
        rows.append(f"| first feature extraction, {n} unique compounds (empty cache) | "
                    f"{t_feat} s ({t_all} s with imports and data loading) |")
        with tempfile.TemporaryDirectory() as out:
            for split in args.splits:
                cmd = [sys.executable, "-m", "thetanet.cli", "nc", "train", "--split", split,
                       "--cache-dir", cache, "--out", str(Path(out) / split), "--quiet"]
                subprocess.run(cmd, capture_output=True, env=env, check=True)  # warm cache
                t0 = time.perf_counter()
                subprocess.run(cmd, capture_output=True, env=env, check=True)
                rows.append(f"| `thetanet nc train --split {split}` (features cached) | "
                            f"{time.perf_counter() - t0:.1f} s |")
                print(rows[-1], flush=True)
    text = "\n".join([
        "# Noun-compound main job: timings", "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M')}: 2 cores; load average at start {load:.2f} "
        "(other processes on the machine slow these down). Reproduce: "
        "`python benchmarks/nc_timing.py`.", "",
        "| what | wall-clock |", "|---|---|", *rows, ""])
    out_path = Path(args.out)
    if out_path.exists():  # keep the dated sections below the table (earlier measurements)
        old = out_path.read_text(encoding="utf-8")
        if "\n## " in old:
            text += "\n" + old[old.index("\n## ") + 1:]
    atomic_write_text(out_path, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
