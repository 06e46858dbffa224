"""Contextual MiniLM encodings (thetanet's NumPy transformer) added to the chosen recipes (val).

First times the encoder over every compound text of the chosen splits (throughput), then, per
split and configuration, trains the split's recipe with seeds 0, 1, 2 (each early-stopped on
val weighted-F1) and reports the mean ± std of val weighted-F1. Every result is written to
``benchmarks/results/nc_context.md`` (and a JSON twin), helped or not. The test split is
never read.

    python benchmarks/nc_context.py [--splits ...] [--configs NAME ...] [--append]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from thetanet.compounds.features import build_features
from thetanet.compounds.recipes import recipe
from thetanet.compounds.system import NCClassifier
from thetanet.data.paths import cache_root
from thetanet.data.tratz import SPLITS, Compounds, labels_for, load_split

CTX = "minilm-context"
#: name -> (features added to the recipe's, other setting overrides)
CONFIGS: dict[str, tuple[list[str], dict]] = {
    "recipe": ([], {}),
    "+ context (compound+mod+head) x1": ([f"{CTX}:weight=1"], {}),
    "+ context (compound+mod+head) x2": ([f"{CTX}:weight=2"], {}),
    "+ context (compound+mod+head) x4": ([f"{CTX}:weight=4"], {}),
    "+ context (compound) x3": ([f"{CTX}:parts=compound,weight=3"], {}),
    "+ context (mod+head) x3": ([f"{CTX}:parts=mod+head,weight=3"], {}),
    "+ word alone x3": (["minilm-word:weight=3"], {}),
    "+ context x2 + word alone x2": ([f"{CTX}:weight=2", "minilm-word:weight=2"], {}),
    "+ paraphrases (Lauer) x0.3": (["minilm-paraphrase:templates=lauer,weight=0.3"], {}),
    "+ paraphrases (Lauer) x1": (["minilm-paraphrase:templates=lauer,weight=1"], {}),
    "+ context x2 + paraphrases (Lauer) x0.3": (
        [f"{CTX}:weight=2", "minilm-paraphrase:templates=lauer,weight=0.3"], {}),
}


def extraction_timing(splits: list[str], data_dir: str | None, cache: Path) -> dict:
    """Encode every compound text of ``splits`` once (no disk cache), timed."""
    seen: dict[tuple[str, str], None] = {}
    for split in splits:
        for part in load_split(split, data_dir):
            seen.update(dict.fromkeys(zip(part.modifiers, part.heads)))
    mods, heads = [m for m, _ in seen], [h for _, h in seen]
    t0 = time.perf_counter()
    fs = build_features([CTX], (mods, heads), cache_dir=False)
    dt = time.perf_counter() - t0
    # fill the shared cache too (the runs below then read it)
    build_features([CTX], (mods, heads), cache_dir=cache)
    return {"compounds": len(mods), "seconds": round(dt, 1),
            "per_second": round(len(mods) / dt, 1), "dim": fs.dim,
            "load": os.getloadavg()[0]}


def run(split: str, name: str, seeds: list[int], data_dir: str | None, cache: Path) -> dict:
    train, val = load_split(split, data_dir)
    labels = list(labels_for(split))
    extra, overrides = CONFIGS[name]
    base = recipe(split)
    feats = [*base.features, *extra]
    t0 = time.perf_counter()
    build_features(feats, Compounds(train.modifiers + val.modifiers, train.heads + val.heads),
                   cache_dir=cache)  # extraction (cached) kept out of the per-run time
    t_feat = time.perf_counter() - t0
    runs, t0 = [], time.perf_counter()
    for seed in seeds:
        s = type(base)(**{**base.__dict__, **overrides, "features": feats, "seeds": [seed]})
        clf = NCClassifier(s, labels).fit(train, val, cache_dir=cache)
        r = clf.evaluate(val)
        runs.append({k: r[k] for k in ("accuracy", "macro_f1", "weighted_f1")})
    wf1 = [r["weighted_f1"] for r in runs]
    return {"split": split, "config": name, "features": feats, "overrides": overrides,
            "runs": runs, "mean_weighted_f1": statistics.mean(wf1),
            "std_weighted_f1": statistics.pstdev(wf1),
            "mean_accuracy": statistics.mean(r["accuracy"] for r in runs),
            "mean_macro_f1": statistics.mean(r["macro_f1"] for r in runs),
            "seconds_per_run": round((time.perf_counter() - t0) / len(seeds), 1),
            "feature_seconds": round(t_feat, 1)}


def write(results: list[dict], timing: dict | None, out: Path) -> None:
    lines = ["# Contextual MiniLM encodings on the chosen recipes (val)", "",
             "thetanet's NumPy transformer encoder (`thetanet.transformer`, all-MiniLM-L6-v2) "
             "gives `minilm-context` (sentence vector of \"modifier head\" + the modifier's "
             "and head's last-layer states in it), `minilm-word` (sentence vector of the word "
             "alone) and `minilm-paraphrase` (cosine of the compound's sentence vector to "
             "filled relation paraphrases, centred per compound, standardised on train). "
             "Each configuration adds blocks to the split's recipe (`recipes.py`); "
             "val weighted-F1, mean ± std over seeds 0, 1, 2. "
             "Reproduce: `python benchmarks/nc_context.py`.", ""]
    if timing:
        lines += [f"Encoder throughput: {timing['compounds']} compound texts in "
                  f"{timing['seconds']} s = {timing['per_second']} compounds/s on 2 cores "
                  f"(load average {timing['load']:.1f} at the start; no cache).", ""]
    lines += ["| split | configuration | val wF1 (mean ± std) | Δ vs recipe | val acc | "
              "val macro-F1 | s/run |", "|---|---|---|---|---|---|---|"]
    base = {r["split"]: r["mean_weighted_f1"] for r in results if r["config"] == "recipe"}
    order = {n: i for i, n in enumerate(CONFIGS)}
    for r in sorted(results, key=lambda r: (SPLITS.index(r["split"]),
                                            order.get(r["config"], len(order)))):
        d = (f"{r['mean_weighted_f1'] - base[r['split']]:+.4f}" if r["split"] in base
             else "")
        lines.append(f"| {r['split']} | {r['config']} | {r['mean_weighted_f1']:.4f} ± "
                     f"{r['std_weighted_f1']:.4f} | {d} | {r['mean_accuracy']:.4f} | "
                     f"{r['mean_macro_f1']:.4f} | {r['seconds_per_run']} |")
    notes = out.with_name("nc_context_notes.md")
    if notes.exists():
        lines += ["", notes.read_text()]
    from thetanet.files import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(lines) + "\n")
    atomic_write_text(out.with_suffix(".json"),
                      json.dumps({"timing": timing, "results": results}, indent=1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", nargs="*", default=list(SPLITS))
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS))
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--data-dir", default=os.environ.get("THETANET_DATA"))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "nc_context.md"))
    ap.add_argument("--append", action="store_true", help="keep earlier rows of the JSON")
    ap.add_argument("--timing", action="store_true",
                    help="time the encoder over every compound of the splits first")
    args = ap.parse_args()
    cache = cache_root() / "features"
    out = Path(args.out)
    results: list[dict] = []
    timing = None
    if args.append and out.with_suffix(".json").exists():
        prev = json.loads(out.with_suffix(".json").read_text())
        results, timing = prev["results"], prev["timing"]
    if args.timing:
        timing = extraction_timing(args.splits, args.data_dir, cache)
        print(f"encoder: {timing}", flush=True)
        write(results, timing, out)
    for split in args.splits:
        for name in args.configs:
            r = run(split, name, args.seeds, args.data_dir, cache)
            results = [x for x in results if (x["split"], x["config"]) != (split, name)]
            results.append(r)
            print(f"{split:15s} {name:45s} wF1 {r['mean_weighted_f1']:.4f} ± "
                  f"{r['std_weighted_f1']:.4f}  {r['seconds_per_run']} s/run", flush=True)
            write(results, timing, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
