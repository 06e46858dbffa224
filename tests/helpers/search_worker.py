"""A search worker for tests/test_search.py: the generic search on small synthetic data.

    python search_worker.py STORAGE STUDY --trials N [--pause-after K] [--grace S]

Prints ``epoch TRIAL STEP VALUE`` per reported epoch and, at the end, one JSON line with
the trials this worker ran. ``--pause-after K``: after the K-th reported epoch, print
``paused`` and block until a line arrives on stdin (the test kills or interrupts it then:
a deterministic "mid-trial" without sleeping).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from thetanet.search import SearchSpace, search_architecture

SPACE = SearchSpace(layers=(0, 2), units=(4, 32), activations=("relu", "tanh", "maxout"),
                    batch_sizes=(32, 64), max_epochs=5, patience=2)


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three overlapping Gaussian classes in 8 dimensions (no model is perfect on them)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(0.0, 1.0, (3, 8))
    y = rng.integers(0, 3, n)
    return (centres[y] + rng.normal(0.0, 1.2, (n, 8))).astype(np.float32), y


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("storage")
    p.add_argument("study")
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pause-after", type=int, default=0)
    p.add_argument("--heartbeat", type=int, default=30)
    p.add_argument("--grace", type=int, default=None)
    args = p.parse_args()
    x, y = blobs(300, 1)
    xv, yv = blobs(150, 2)
    seen = [0]

    def on_epoch(trial: int, step: int, value: float) -> None:
        print(f"epoch {trial} {step} {value:.6f}", flush=True)
        seen[0] += 1
        if seen[0] == args.pause_after:
            print("paused", flush=True)
            sys.stdin.readline()

    try:
        result = search_architecture(x, y, xv, yv, space=SPACE, n_trials=args.trials,
                                     storage=args.storage, study_name=args.study,
                                     seed=args.seed, pruner="none", startup_trials=2,
                                     heartbeat_interval=args.heartbeat,
                                     grace_period=args.grace, on_epoch=on_epoch)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        return 130
    print(json.dumps({"trials_run": result.trials_run, "summary": result.summary}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
