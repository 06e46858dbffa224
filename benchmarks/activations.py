"""Which activations let a deep MLP learn? The same deep network on the digits, per activation.

The lecture credits ReLU and dropout with making deep networks trainable. This measures it:
one fixed architecture (``--depth`` hidden layers of ``--width`` units, Glorot-uniform init),
trained with plain mini-batch gradient descent (SGD, no momentum: the lecture's update rule) on
scikit-learn's 8×8 digits, once per activation, with and without dropout after each hidden
layer. Reported per run: test accuracy after the last epoch and the first epoch at which the
validation accuracy reaches ``--target`` ("—" if never). Rows: the lecture's twelve (with
SoftExponential at α = −0.5, 0, 0.5), the learnable PReLU, APL and SoftExponential, and Maxout.

    .venv/bin/python benchmarks/activations.py          # writes benchmarks/results/activations.md
    .venv/bin/python benchmarks/activations.py --quick  # a smoke run (1 seed, few epochs)
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # small matrices: one thread is fastest, and polite

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from thetanet import Dense, Dropout, Sequential  # noqa: E402
from thetanet.callbacks import Callback  # noqa: E402
from thetanet.files import atomic_write_text  # noqa: E402
from thetanet.layers import Maxout  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "activations.md"

#: (label, activation config or "maxout")
ROWS: list[tuple[str, Any]] = [
    ("identity", "identity"),
    ("binary_step", "binary_step"),
    ("logistic", "logistic"),
    ("tanh", "tanh"),
    ("arctan", "arctan"),
    ("relu", "relu"),
    ("softplus", "softplus"),
    ("bent_identity", "bent_identity"),
    ("soft_exponential α=−0.5", {"name": "soft_exponential", "alpha": -0.5}),
    ("soft_exponential α=0", {"name": "soft_exponential", "alpha": 0.0}),
    ("soft_exponential α=0.5", {"name": "soft_exponential", "alpha": 0.5}),
    ("sinusoid", "sinusoid"),
    ("sinc", "sinc"),
    ("gaussian", "gaussian"),
    ("prelu (learned α)", "prelu"),
    ("apl (S=2, learned)", {"name": "apl", "hinges": 2}),
    ("soft_exponential (learned α per unit)",
     {"name": "soft_exponential", "learnable": True, "per_unit": True}),
    ("maxout (2 pieces)", "maxout"),
]


class EpochsToTarget(Callback):
    """Record the first epoch (1-based) at which ``val_accuracy`` reaches ``target``."""

    def __init__(self, target: float) -> None:
        super().__init__()
        self.target = target
        self.epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if self.epoch is None and logs and logs.get("val_accuracy", 0.0) >= self.target:
            self.epoch = epoch + 1


def load_digits(seed: int = 0) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits as _load

    d = _load()
    x, y = (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(y))
    x, y = x[perm], y[perm]
    n_tr, n_va = int(0.6 * len(y)), int(0.2 * len(y))
    return (x[:n_tr], y[:n_tr], x[n_tr:n_tr + n_va], y[n_tr:n_tr + n_va],
            x[n_tr + n_va:], y[n_tr + n_va:])


def build(act: Any, depth: int, width: int, dropout: float, seed: int) -> Sequential:
    layers: list[Any] = []
    for _ in range(depth):
        layers.append(Maxout(width, 2) if act == "maxout" else Dense(width, act))
        if dropout:
            layers.append(Dropout(dropout))
    layers.append(Dense(10, "softmax"))
    return Sequential(layers, seed=seed)


def run_one(act: Any, data: tuple[np.ndarray, ...], args: argparse.Namespace, dropout: float,
            seed: int) -> dict[str, Any]:
    xtr, ytr, xva, yva, xte, yte = data
    model = build(act, args.depth, args.width, dropout, seed)
    model.compile({"name": "sgd", "learning_rate": args.lr}, "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    cb = EpochsToTarget(args.target)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(xtr, ytr, epochs=args.epochs, batch_size=args.batch_size, seed=seed,
                            validation_data=(xva, yva), verbose=0, callbacks=[cb])
    seconds = time.perf_counter() - t0
    diverged = any("NaN" in str(w.message) for w in caught) or bool(
        getattr(history, "stopped_reason", None))
    acc = float(model.evaluate(xte, yte)[1])
    return {"acc": acc, "epoch": cb.epoch, "diverged": diverged, "seconds": seconds}


def _fmt_runs(runs: list[dict[str, Any]]) -> tuple[str, str]:
    accs = [r["acc"] for r in runs]
    acc = f"{statistics.mean(accs):.3f}"
    if len(accs) > 1:
        acc += f" ({min(accs):.3f}–{max(accs):.3f})"
    if any(r["diverged"] for r in runs):
        acc += " †"
    epochs = ", ".join("—" if r["epoch"] is None else str(r["epoch"]) for r in runs)
    return acc, epochs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=5, help="hidden layers (default 5)")
    p.add_argument("--width", type=int, default=64, help="units per hidden layer (default 64)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (default 0.05)")
    p.add_argument("--dropout", type=float, default=0.2, help="rate for the dropout runs")
    p.add_argument("--target", type=float, default=0.9, help="validation accuracy target")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--quick", action="store_true", help="1 seed, 5 epochs, print only")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = 1, 5

    data = load_digits(0)
    seeds = list(range(args.seeds))
    lines = []
    never: dict[float, list[str]] = {0.0: [], args.dropout: []}
    diverged: list[str] = []
    t_all = time.perf_counter()
    for label, act in ROWS:
        cells = []
        for rate in (0.0, args.dropout):
            runs = [run_one(act, data, args, rate, s) for s in seeds]
            cells.extend(_fmt_runs(runs))
            if all(r["epoch"] is None for r in runs):
                never[rate].append(label)
            if any(r["diverged"] for r in runs) and label not in diverged:
                diverged.append(label)
        secs = time.perf_counter() - t_all
        print(f"{label:<40} {' | '.join(cells)}   [{secs:.0f}s]", file=sys.stderr)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    total = time.perf_counter() - t_all

    n_tr, n_va, n_te = len(data[1]), len(data[3]), len(data[5])
    report = "\n".join([
        "# Deep MLP on the digits, one activation at a time",
        "",
        "Generated by `benchmarks/activations.py`; rerun it to refresh. The lecture credits ReLU",
        "and dropout with making deep networks trainable; this table measures that claim on one",
        "small problem.",
        "",
        f"- Data: scikit-learn digits (8×8, 10 classes), pixels / 16; seeded split "
        f"{n_tr} train / {n_va} validation / {n_te} test.",
        f"- Network: {args.depth} hidden layers × {args.width} units (Maxout: {args.width} units"
        f" × 2 pieces), softmax output, Glorot-uniform init, float32.",
        f"- Training: plain SGD (no momentum), learning rate {args.lr}, batch {args.batch_size},"
        f" {args.epochs} epochs, cross-entropy. Dropout runs: Dropout({args.dropout}) after "
        "every hidden layer.",
        f"- Test acc: accuracy on the test split after the last epoch, mean (min–max) over "
        f"seeds {seeds}. Epochs to {args.target:.0%}: first epoch whose validation accuracy "
        f"reaches {args.target:.0%}, per seed (— = never within {args.epochs} epochs). "
        "† = the loss became NaN/inf in some run (training stopped, weights restored).",
        "",
        f"| activation | test acc | epochs to {args.target:.0%} | test acc, dropout | "
        f"epochs to {args.target:.0%}, dropout |",
        "|---|---|---|---|---|",
        *lines,
        "",
        f"Never reached {args.target:.0%} validation accuracy (any seed): without dropout "
        f"{', '.join(never[0.0]) or 'none'}; with dropout "
        f"{', '.join(never[args.dropout]) or 'none'}.",
        f"Loss became NaN/inf in some run: {', '.join(diverged) or 'none'}.",
        "",
        f"Total time {total:.0f} s on {platform.machine()} ({platform.python_implementation()} "
        f"{platform.python_version()}, NumPy {np.__version__}, one BLAS thread).",
        "",
    ])
    if args.quick:
        print(report)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, report)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
