"""Digits benchmarks (the lecture's multi-class example): accuracy and time of ``thetanet digits``.

Runs the commands below, each as a fresh process, and writes ``benchmarks/results/digits.md``:

- sklearn digits, default recipe, seed 0 (the acceptance target: test accuracy ≥ 98%), and the
  same command for seeds 1..4 (the seed also draws the stratified split);
- MNIST t10k, trained on its first 8,000 images and tested on the last 2,000 (target ≥ 96%);
- the full-MNIST recipe run on the same 8k/2k split (a proxy: the 60k training set is not in the
  offline data), and the full recipe itself when ``<data root>/mnist/train-*`` exist;
- the CNN (``--model cnn``, issue 17): sklearn digits over seeds 0–4 (target: mean ≥ 99.3%),
  also as a single network (``--ensemble 1``), and MNIST t10k 8k/2k (target ≥ 99.0%).

Usage: ``python benchmarks/digits.py [--data-dir DIR] [--quick] [--models mlp,cnn]``
(``THETANET_DATA`` otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from thetanet.data.idx import mnist_available
from thetanet.data.paths import data_root
from thetanet.examples.digits import CNN_RECIPES, RECIPES
from thetanet.files import atomic_write_text

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "digits.md"


def run(args: list[str]) -> tuple[dict, float]:
    cmd = [sys.executable, "-m", "thetanet.cli", "digits", *args, "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr}")
    return json.loads(proc.stdout), wall


def shown(args: list[str]) -> str:
    return "thetanet digits " + " ".join(args)


def describe(r) -> str:
    return (f"conv blocks {list(r.filters)} ({r.kernel_size}×{r.kernel_size}, ReLU, 'same', "
            f"2×2 max-pool, dropout {r.conv_dropout:g}) → Dense {list(r.hidden)} ReLU, dropout "
            f"{r.dropout:g} → softmax; Adam η = {r.learning_rate:g} (cosine), batch "
            f"{r.batch_size}, {r.epochs} epochs, shifts ±{r.shift} px on "
            f"{r.shift_fraction:.0%} of the images per epoch, ensemble of {r.ensemble}")


def mlp_rows(a, record, notes) -> None:
    """The dense net on sklearn digits, seeds 0–4."""
    accs = [record("sklearn digits, seed 0", ["--dataset", "sklearn-digits"],
                   "≥ 98%")["test_accuracy"]]
    if not a.quick:
        for seed in range(1, 5):
            doc = record(f"sklearn digits, seed {seed}",
                         ["--dataset", "sklearn-digits", "--seed", str(seed)], "(spread)")
            accs.append(doc["test_accuracy"])
        notes.append(f"Dense net, sklearn digits over seeds 0–4 (split and training both drawn "
                     f"from the seed): mean {np.mean(accs):.2%}, min {min(accs):.2%}.")


def mnist_mlp_rows(a, record, notes, root) -> None:
    """The dense net on MNIST t10k 8k/2k, the full-MNIST recipe on it (proxy) and on 60k."""
    if mnist_available("t10k", a.data_dir):
        record("MNIST t10k 8k/2k", ["--dataset", "mnist-t10k"], "≥ 96%")
        if not a.quick:
            full = RECIPES["mnist-full"]
            proxy = ["--dataset", "mnist-t10k", "--hidden", ",".join(map(str, full.hidden)),
                     "--dropout", str(full.dropout), "--epochs", str(full.epochs),
                     "--batch-size", str(full.batch_size), "--lr", str(full.learning_rate),
                     "--shift", str(full.shift)]
            record("full-MNIST recipe on t10k 8k/2k (proxy)", proxy, "(proxy)")
    else:
        notes.append(f"MNIST t10k not found under {root / 'mnist'}: MNIST rows skipped.")
    if mnist_available("train", a.data_dir):
        record("MNIST 60k → t10k (full recipe)", ["--dataset", "mnist-full"], "≥ 98.5%")
    else:
        notes.append("Full MNIST (60k training images) is not in the offline data, so the "
                     "full recipe was not run here; see docs/examples.md.")


def cnn_rows(a, record, notes) -> None:
    """The CNN (issue 17): sklearn digits seeds 0–4, as recipe (ensemble) and single network;
    MNIST t10k 8k/2k."""
    seeds = [0] if a.quick else list(range(5))
    for label, extra in (("CNN", []), ("single CNN", ["--ensemble", "1"])):
        accs, errors, total = [], 0, 0
        for seed in seeds:
            doc = record(f"sklearn digits, {label}, seed {seed}",
                         ["--dataset", "sklearn-digits", "--model", "cnn", "--seed", str(seed),
                          *extra], "mean ≥ 99.3%" if label == "CNN" else "(single network)")
            accs.append(doc["test_accuracy"])
            errors += round((1 - doc["test_accuracy"]) * doc["n_test"])
            total += doc["n_test"]
        notes.append(f"**{label}, sklearn digits over seeds {seeds[0]}–{seeds[-1]}: mean "
                     f"{np.mean(accs):.2%}** (min {min(accs):.2%}; {errors} test digits wrong "
                     f"of {total})"
                     + (" — target mean ≥ 99.3%: "
                        + ("met." if np.mean(accs) >= 0.993 else "NOT met.")
                        if label == "CNN" else "."))
    if mnist_available("t10k", a.data_dir):
        doc = record("MNIST t10k 8k/2k, CNN", ["--dataset", "mnist-t10k", "--model", "cnn"],
                     "≥ 99.0%")
        notes.append(f"**CNN, MNIST t10k 8k/2k: {doc['test_accuracy']:.2%}** — target ≥ 99.0%: "
                     + ("met." if doc["test_accuracy"] >= 0.99 else "NOT met."))


#: How the CNN recipes were chosen (recorded by hand when they were; not rerun by this script).
CNN_SECTION = """## The CNN recipes (`thetanet digits --model cnn`)

`CNN_RECIPES` in `src/thetanet/examples/digits.py`:

- sklearn digits: {sk}.
- MNIST t10k: {mn}.

How the sklearn-digits recipe was chosen: the first recipe was written down and run once on
the reported seeds 0–4, where it reached 99.28 % (the "single CNN" rows above; 13 wrong, one
digit short of the target). The changes below were then compared on the sklearn-digits splits of
seeds 5–14 only (mean test accuracy of one network per seed; 359 test digits per seed, so one
digit is 0.28 %), and the winner run on seeds 0–4. Every candidate tried (2026-11-30, one BLAS
thread):

| candidate (change from the first recipe) | seeds | mean test accuracy |
|---|---|---|
| first recipe: conv [32, 64], Dense [128], dropout 0.1 / 0.4, 60 epochs, batch 32 | 5–9 | 99.55 % |
| first recipe (η 2e-3, shifts ±1 px on 50 % of the images) | 10–14 | 99.39 % |
| 100 epochs | 5–9 | 99.55 % |
| shifts on 100 % of the images | 5–9 | 99.16 % |
| conv blocks [64, 128] | 5–9 | 99.55 % |
| dropout 0.5 after Dense | 5–14 | 99.39 % |
| batch 64 | 5–14 | 99.25 % |
| conv dropout 0.25 | 10–14 | 99.16 % |
| conv dropout 0 | 10–14 | 99.28 % |
| 5×5 kernels | 10–14 | 99.22 % |
| Dense [256] | 10–14 | 99.28 % |
| three conv blocks [32, 64, 128] | 10–14 | 99.33 % |
| η 1e-3, 100 epochs | 10–14 | 99.22 % |
| shifts on 75 % | 10–14 | 99.22 % |
| **ensemble of 3 first recipes** (mean probabilities) | 10–14 | **99.61 %** |

None of the single-network changes beat the first recipe beyond noise (±1–2 digits over five
splits); averaging three networks removed about a third of the errors (7 wrong over seeds
10–14, against 9–13 for each of its members alone), so the sklearn-digits recipe is the first
one as an ensemble of {ens} (`--ensemble 1` trains one network: the "single CNN" rows above).
The MNIST t10k recipe (conv blocks [16, 32], 20 epochs, shifts ±2 px) was run once, on the
reported split, and not tuned: it met its target as first written.
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--quick", action="store_true", help="seed 0 only, no proxy run")
    ap.add_argument("--models", default="mlp,cnn", help="which networks: mlp, cnn or both")
    a = ap.parse_args()
    models = set(a.models.split(","))
    root = data_root(a.data_dir)
    dd = ["--data-dir", str(root)] if a.data_dir else []
    rows: list[tuple[str, str, str, str, str]] = []
    notes: list[str] = []
    load_before = " ".join(f"{v:.2f}" for v in os.getloadavg())

    def record(label: str, args: list[str], target: str) -> dict:
        doc, wall = run(args + dd)
        print(f"{label}: {doc['test_accuracy']:.4f} ({doc['seconds']:.1f} s training, "
              f"{wall:.1f} s wall)", flush=True)
        rows.append((label, f"`{shown(args)}`", f"{doc['test_accuracy']:.2%}", target,
                     f"{doc['seconds']:.1f} s / {wall:.1f} s"))
        return doc

    if "mlp" in models:
        mlp_rows(a, record, notes)
        mnist_mlp_rows(a, record, notes, root)
    if "cnn" in models:
        cnn_rows(a, record, notes)

    threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    cnn = CNN_RECIPES["sklearn-digits"]
    lines = [
        "# Digits benchmarks",
        "",
        f"Generated by `python benchmarks/digits.py` on {time.strftime('%Y-%m-%d')}: "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, NumPy {np.__version__}"
        + (f", BLAS threads {threads}" if threads else "") + ".",
        "Data root: `$THETANET_DATA` (MNIST under `<root>/mnist/`). Time = training / whole "
        "process; `thetanet digits` pins BLAS to one thread by default. Load average (1/5/15 "
        f"min) before and after: {load_before}; "
        + " ".join(f"{v:.2f}" for v in os.getloadavg()) + " (the 2 cores are shared).",
        "",
        "| run | command | test accuracy | target | time |",
        "|---|---|---|---|---|",
        *[f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} |" for r in rows],
        "",
        *[f"- {n}" for n in notes],
        "",
        *(CNN_SECTION.format(
            sk=describe(CNN_RECIPES["sklearn-digits"]),
            mn=describe(CNN_RECIPES["mnist-t10k"]), ens=cnn.ensemble).splitlines()
          if "cnn" in models else []),
        "",
    ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(OUT, "\n".join(lines))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
