"""Random resplits of a random split's train + val: is a configuration's gain on val real?

Val of the random splits is small (940 compounds on coarse_random, 1,400 on fine_random), and a
configuration chosen on it (by hand or by ``nc search``) partly fits its noise. Here train + val
are pooled and cut again R times (seeded permutations; 2,000 compounds as val), and each
configuration — the split's recipe with overrides — trains with seed 0 and early-stops on that
val. Prints one JSON line per (resplit, configuration). (The lexical splits need lexically
disjoint resplits instead: ``benchmarks/nc_lexical.py --resplits``.)

    python benchmarks/nc_random_resplits.py --split coarse_random \\
        --configs '{"recipe": {}, "wider": {"hidden": [512]}}' --resplits 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from thetanet.compounds.recipes import recipe
from thetanet.compounds.settings import NCSettings
from thetanet.compounds.system import NCClassifier
from thetanet.data.tratz import labels_for, load_split
from thetanet.data.tsv import Compounds
from thetanet.utils import blas_threads

VAL_SIZE = 2000


def resplit(train: Compounds, val: Compounds, r: int) -> tuple[Compounds, Compounds]:
    """Resplit ``r`` of train + val: a seeded permutation, the first VAL_SIZE as val."""
    mods, heads = train.modifiers + val.modifiers, train.heads + val.heads
    labels = (train.labels or []) + (val.labels or [])
    perm = np.random.default_rng(100 + r).permutation(len(mods))

    def part(ix: np.ndarray) -> Compounds:
        return Compounds([mods[i] for i in ix], [heads[i] for i in ix], [labels[i] for i in ix])

    return part(perm[VAL_SIZE:]), part(perm[:VAL_SIZE])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=["fine_random", "coarse_random"], required=True)
    ap.add_argument("--configs", required=True,
                    help="JSON object: name -> NCSettings overrides of the split's recipe")
    ap.add_argument("--resplits", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--data-dir", default=os.environ.get("THETANET_DATA"))
    args = ap.parse_args()
    configs = json.loads(args.configs)
    train, val = load_split(args.split, args.data_dir)
    for r in args.resplits:
        tr, va = resplit(train, val, r)
        for name, overrides in configs.items():
            settings = NCSettings(**{**recipe(args.split).__dict__, **overrides, "seeds": [0]})
            t0 = time.perf_counter()
            with blas_threads(1):
                clf = NCClassifier(settings, list(labels_for(args.split))).fit(tr, va)
            assert clf.selection is not None
            print(json.dumps({"resplit": r, "config": name,
                              "val_wf1": round(float(clf.selection.headline["weighted_f1"]), 4),
                              "s": round(time.perf_counter() - t0, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
