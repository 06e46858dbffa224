"""Probe the noun-compound features with a plain scikit-learn LogisticRegression.

A quality check of ``thetanet.compounds.features`` (not part of the library): for each
split and feature variant, fit LogisticRegression on train for a few C values and report
the val accuracy / weighted-F1 of the C with the best val weighted-F1. Also times the
first (uncached) feature extraction.

    python benchmarks/nc_features_probe.py [--splits fine_random ...] [--variants base ...]
        [--cs 0.3 1 3] [--data-dir DIR] [--cache-dir DIR] [--jobs 2] [--out results.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

from thetanet.compounds.features import build_features
from thetanet.data.tratz import SPLITS, load_split
from thetanet.files import atomic_write_text

# Reference val accuracy / weighted-F1 (LogisticRegression on minilm-static + wordnet).
REFERENCE = {
    "fine_random": (0.775, 0.766),
    "fine_lexical": (0.557, 0.530),
    "coarse_random": (0.797, 0.794),
    "coarse_lexical": (0.492, 0.479),
}

# name -> (feature specs, random splits only?)
VARIANTS: dict[str, tuple[list[str], bool]] = {
    "binary": (["wordnet:weighting=binary", "minilm-static"], False),
    "binary, dense x3": (["wordnet:weighting=binary", "minilm-static:weight=3"], False),
    "rank": (["wordnet", "minilm-static"], False),
    "rank, dense x3": (["wordnet", "minilm-static:weight=3"], False),
    "rank, dense x3, no lexnames": (["wordnet:lexnames=false", "minilm-static:weight=3"], False),
    "rank, dense x3, wn-L2 x4": (
        ["wordnet:normalize=true,weight=4", "minilm-static:weight=3"],
        False,
    ),
    "rank, dense x3, +prod": (["wordnet", "minilm-static:weight=3,parts=mod+head+prod"], False),
    "rank, dense x3, +words": (["wordnet", "minilm-static:weight=3", "words"], True),
    "rank, dense x3, +chars": (["wordnet", "minilm-static:weight=3", "chars"], True),
}
# C grid per split kind (lexical splits want stronger regularisation)
CS = {"random": [0.1, 0.3, 1.0], "lexical": [0.03, 0.1, 0.3]}


def _fit_eval(xtr, ytr, xva, yva, c: float) -> tuple[float, float, float, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    t = time.perf_counter()
    clf = LogisticRegression(C=c, max_iter=2000).fit(xtr, ytr)
    pred = clf.predict(xva)
    acc = accuracy_score(yva, pred)
    f1 = f1_score(yva, pred, average="weighted")
    return c, acc, f1, time.perf_counter() - t


def time_first_extraction(split: str, data_dir: str | None) -> tuple[float, int]:
    """Seconds for an uncached wordnet + minilm-static extraction of train+val."""
    train, val = load_split(split, data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        fs = build_features(["wordnet", "minilm-static"], train, cache_dir=tmp)
        fs.transform(train)
        fs.transform(val)
        first = time.perf_counter() - t
    return first, len(train) + len(val)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument(
        "--cs", nargs="+", type=float, default=None, help="C values (default: per split)"
    )
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--cache-dir", default=None, help="feature cache (default: user cache)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=None, help="also write the markdown table here")
    args = ap.parse_args(argv)

    from joblib import Parallel, delayed

    lines = []

    def emit(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    first, n = time_first_extraction(args.splits[0], args.data_dir)
    emit(
        f"First extraction (wordnet + minilm-static, no cache) of {args.splits[0]} train+val "
        f"({n} compounds): {first:.1f} s on {os.cpu_count()} CPUs"
    )
    emit()
    emit("| split | variant | best C | val acc | val wF1 | ref acc/wF1 | fit s |")
    emit("|---|---|---|---|---|---|---|")
    best: dict[str, tuple[str, float, float, float]] = {}
    for split in args.splits:
        train, val = load_split(split, args.data_dir)
        for vname in args.variants:
            specs, random_only = VARIANTS[vname]
            if random_only and not split.endswith("random"):
                continue
            t = time.perf_counter()
            fs = build_features(specs, train, cache_dir=args.cache_dir)
            xtr, xva = fs.transform(train), fs.transform(val)
            t_feat = time.perf_counter() - t
            runs = Parallel(n_jobs=args.jobs)(
                delayed(_fit_eval)(xtr, train.labels, xva, val.labels, c)
                for c in (args.cs or CS[split.split("_")[1]])
            )
            c, acc, f1, secs = max(runs, key=lambda r: r[2])
            ref = REFERENCE[split]
            emit(
                f"| {split} | {vname} | {c:g} | {acc:.3f} | {f1:.3f} | {ref[0]:.3f}/{ref[1]:.3f} "
                f"| {np.mean([r[3] for r in runs]):.0f} (+{t_feat:.1f} feat) |"
            )
            if split not in best or f1 > best[split][3]:
                best[split] = (vname, c, acc, f1)
    emit()
    emit("Best variant per split (by val weighted-F1):")
    emit()
    for split, (vname, c, acc, f1) in best.items():
        emit(f"- {split}: {vname} (C={c:g}): acc {acc:.3f}, wF1 {f1:.3f}")
    if args.out:
        atomic_write_text(args.out, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
