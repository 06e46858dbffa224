"""``thetanet sequences``: a recurrent net (GRU, LSTM or SimpleRNN) learns to add numbers
written as digit strings, carrying through time (see :mod:`thetanet.examples.sequences`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from thetanet.cli import CLIError, positive_int
from thetanet.examples import sequences as example


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sequences",
        help="a recurrent net learns to add numbers written as digit strings",
        description="Train Embedding(mask_zero) → GRU/LSTM/SimpleRNN (every step) → "
                    "Dense(10, softmax) to add two numbers read digit pair by digit pair, "
                    "least significant first: the carry must live in the recurrent state. "
                    "Pairs have different lengths, padded and masked. Reports the held-out "
                    "accuracy per digit and per whole sum; progress per epoch on stderr.")
    p.add_argument("--cell", default="gru", choices=list(example.CELLS),
                   help="the recurrent layer (default gru)")
    p.add_argument("--digits", type=positive_int, default=5,
                   help="at most this many digits per number (default 5, at most 17)")
    p.add_argument("--units", type=positive_int, default=32, help="state width u (32)")
    p.add_argument("--epochs", type=positive_int, default=8, help="training epochs (8)")
    p.add_argument("--train", type=positive_int, default=2000,
                   help="training sums (2000)")
    p.add_argument("--test", type=positive_int, default=500, help="held-out sums (500)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="mini-batch size (32)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed for the data, Θ initialisation and shuffling (0)")
    p.add_argument("--plots", metavar="DIR", default=None,
                   help="write learning_curves.png (loss, held-out accuracies) into DIR")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run)


def _progress(epochs: int) -> Any:
    def report(epoch: int, logs: dict[str, float]) -> None:
        print(f"epoch {epoch + 1}/{epochs}: loss {logs.get('loss', float('nan')):.4f}, "
              f"val_loss {logs.get('val_loss', float('nan')):.4f}, digits right "
              f"{logs['val_digit_accuracy']:.1%}, sums right {logs['val_sum_accuracy']:.1%}",
              file=sys.stderr, flush=True)

    return report


def run(args: argparse.Namespace) -> int:
    if args.digits > 17:
        raise CLIError(f"--digits must be at most 17 (int64 sums), got {args.digits}")
    plots = None if args.plots is None else Path(args.plots)
    if plots is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CLIError("--plots needs matplotlib: pip install 'thetanet[plot]'") from None
        if plots.exists() and not plots.is_dir():
            raise CLIError(f"--plots must name a directory, {plots} is a file")
    result = example.learn_addition(
        args.cell, args.epochs, args.train, args.test, args.digits, args.units,
        args.batch_size, args.seed, None if args.quiet else _progress(args.epochs))
    written = []
    if plots is not None:
        from thetanet.plots import plot_learning_curves

        try:
            plots.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CLIError(f"cannot create plot directory {plots}: {exc}") from None
        title = f"{args.cell}: adding numbers of up to {args.digits} digits"
        written.append(str(plot_learning_curves(result.history,
                                                plots / "learning_curves.png", title)))
    doc = {"cell": args.cell, "digits": args.digits, "epochs": args.epochs,
           "digit_accuracy": result.digit_accuracy, "sum_accuracy": result.sum_accuracy,
           "examples": [{"a": a, "b": b, "predicted": s, "right": a + b == s}
                        for a, b, s in result.examples],
           "history": result.history, "plots": written}
    if args.json:
        print(json.dumps(doc))
        return 0
    print(f"{args.cell} ({args.units} units), numbers of up to {args.digits} digits, "
          f"{args.epochs} epochs on {args.train} sums")
    print(f"held-out: {result.digit_accuracy:.1%} of the digits, "
          f"{result.sum_accuracy:.1%} of the sums right")
    for a, b, s in result.examples:
        print(f"  {a} + {b} = {s}" + ("" if a + b == s else f"   (wrong: {a + b})"))
    for path in written:
        print(f"wrote {path}")
    return 0
