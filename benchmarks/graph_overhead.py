"""What the model graph costs per training step: Sequential trained through the graph engine
(thetanet.backprop) against an older checkout's Sequential, each in its own process.

    python benchmarks/graph_overhead.py --baseline /path/to/old/checkout/src [--rounds 7]

Workloads (float32, one BLAS thread, CPU time per step, the minimum over rounds): a tiny
2-layer net trained online (the per-step Python cost dominates), the speed benchmark's W4
shape (784-64-10, online SGD) and a 32-row mini-batch with Adam. Writes
benchmarks/results/graph_overhead.md, naming the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "graph_overhead.md"

CHILD = r"""
import json, sys, time
import numpy as np
from thetanet import Dense, Sequential
rounds = int(sys.argv[1])
rng = np.random.default_rng(0)
work = {"tiny online sgd": ((5, 4, 3), 1, "sgd", 3000),
        "W4 784-64-10 online sgd": ((784, 64, 10), 1, "sgd", 2000),
        "784-64-10 batch 32 adam": ((784, 64, 10), 32, "adam", 6400)}
out = {}
for name, (shape, bs, opt, n) in work.items():
    x = rng.normal(size=(n, shape[0])).astype(np.float32)
    y = rng.integers(0, shape[-1], n)
    model = Sequential([Dense(shape[1], "relu"), Dense(shape[2], "softmax")], seed=0)
    model.compile(opt, "sparse_categorical_crossentropy")
    best = float("inf")
    for r in range(rounds):
        t = time.process_time()
        model.fit(x, y, epochs=1, batch_size=bs, verbose=0, seed=r)
        best = min(best, time.process_time() - t)
    out[name] = best / (n // bs) * 1e6
print(json.dumps(out))
"""


def run(src: Path, rounds: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src), "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(rounds)], env=env, check=True,
                          capture_output=True, text=True, timeout=900)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", type=Path, required=True, help="src/ of the older checkout")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    pairs = [(run(args.baseline, args.rounds), run(ROOT / "src", args.rounds))
             for _ in range(2)]  # interleaved twice: the load of a shared machine drifts
    base = {k: min(p[0][k] for p in pairs) for k in pairs[0][0]}
    new = {k: min(p[1][k] for p in pairs) for k in pairs[0][1]}
    rows = [f"| {k} | {base[k]:.1f} | {new[k]:.1f} | {new[k] / base[k]:.2f} |" for k in base]
    text = "\n".join([
        "# Per-step cost of training through the model graph", "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; one BLAS thread; CPU time per step (µs), the "
        f"minimum of {args.rounds} epochs × 2 interleaved runs; load average "
        f"{os.getloadavg()[0]:.1f} at the end (a shared machine: ratios, not absolute times, "
        f"are the result). Baseline: `{args.baseline}`.",
        "", "| workload | before (µs/step) | graph (µs/step) | ratio |", "|---|---|---|---|",
        *rows, ""])
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
