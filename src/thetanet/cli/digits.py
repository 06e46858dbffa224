"""``thetanet digits``: the lecture's multi-class example — an MLP with a softmax output on
handwritten digits (scikit-learn's 8×8 digits offline, or MNIST)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from thetanet.cli import CLIError, positive_int
from thetanet.cli.arguments import check_digits_args, number, whole
from thetanet.data import digits as data_digits
from thetanet.data.idx import IdxFormatError
from thetanet.examples import digits as example


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "digits",
        help="train an MLP with a softmax output on handwritten digits",
        description="Train an MLP (ReLU hidden layers, dropout, softmax output over the 10 "
                    "digits, one-hot targets, cross-entropy, Adam) on handwritten digits and "
                    "report the test accuracy, overall and per class. Data sets: "
                    "sklearn-digits (8×8, bundled with scikit-learn; stratified 80/20 split, "
                    "fixed seed), mnist-t10k (train on the first 8,000 t10k images, test on the "
                    "last 2,000), mnist-full (60,000 training images, tested on t10k), mnist "
                    "(mnist-full when the training files are present, else mnist-t10k). Each "
                    "data set has its own default recipe; the options below override it.")
    p.add_argument("--dataset", default="sklearn-digits",
                   choices=list(data_digits.DATASETS),
                   help="data set (default sklearn-digits)")
    p.add_argument("--data-dir", default=None,
                   help="data root (default $THETANET_DATA, else ~/.cache/thetanet); MNIST "
                        "is read from <root>/mnist/")
    p.add_argument("--download", action="store_true",
                   help="download missing MNIST files into <root>/mnist/ (verified)")
    p.add_argument("--model", default="mlp", choices=list(example.MODELS),
                   help="mlp (default) or cnn: a LeNet-like convolutional net (3×3 conv + "
                        "max-pool blocks, then dense layers)")
    p.add_argument("--hidden", default=None,
                   help="hidden layer widths, e.g. 300,100 ('none' for softmax regression); "
                        "with --model cnn the dense layers after the convolutions")
    p.add_argument("--ensemble", type=positive_int, default=None,
                   help="train this many networks (other seeds) and average their "
                        "probabilities (default: the recipe's)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs")
    p.add_argument("--batch-size", type=int, default=None, help="mini-batch size")
    p.add_argument("--lr", type=float, default=None, help="initial Adam learning rate η")
    p.add_argument("--dropout", type=float, default=None, help="dropout rate after each "
                   "hidden layer")
    p.add_argument("--l2", type=float, default=None, help="L2 penalty λ on every Θ")
    p.add_argument("--shift", type=int, default=None,
                   help="augmentation: random shifts of up to this many pixels (0 = none)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed for Θ initialisation, shuffling, dropout, shifts and the "
                        "sklearn-digits split (default 0)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads while training (default 1: these matrix products are "
                        "small, and one thread is much faster when other processes share the "
                        "cores; 0 = the BLAS default)")
    p.add_argument("--plots", metavar="DIR", default=None,
                   help="write confusion_matrix.png, misclassified.png and "
                        "learning_curves.png (and filters.png, the learnt first-layer "
                        "filters, with --model cnn) into DIR")
    p.add_argument("--save-model", metavar="DIR", default=None,
                   help="save the trained model (JSON + npz) into DIR")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="one line per epoch on stderr (instead of the progress bar or lines)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress on stderr (the result on stdout is the same)")
    _add_search_options(p)
    p.set_defaults(func=run)


def _add_search_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--search", action="store_true",
                   help="pick the architecture instead (thetanet.search, Optuna): trials on a "
                        "val part of the training images; --epochs caps each trial")
    p.add_argument("--trials", type=positive_int, default=20, help="--search: trials (20)")
    p.add_argument("--storage", default=None,
                   help="--search: Optuna storage URL or SQLite file (default: "
                        "~/.local/share/thetanet/thetanet-search.db)")
    p.add_argument("--study", default=None, help="--search: study (default digits-DATASET)")


def run(args: argparse.Namespace) -> int:
    hidden = _checked_options(args)
    data = _load(args)
    if args.search:
        from thetanet.cli.nc_search import run_digits_search

        return run_digits_search(args, data)
    return _train_and_report(args, data, hidden)


def _checked_options(args: argparse.Namespace) -> Any:
    """The options checked before any work; returns the parsed --hidden (None: the recipe's)."""
    try:
        hidden = example.parse_hidden(args.hidden) if args.hidden is not None else None
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    for name in ("epochs", "batch_size"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be at least 1, got {v}")
    number("--lr", args.lr, low=0, low_open=True)
    number("--dropout", args.dropout, low=0, high=1, high_open=True)
    number("--l2", args.l2, low=0)
    whole("--shift", args.shift, 0)
    whole("--threads", args.threads, 0)
    whole("--seed", args.seed, 0)
    check_digits_args(args)  # --save-model / --plots must not name a file
    if args.search and args.model != "mlp":
        raise CLIError("--search picks MLP architectures only; drop --model cnn")
    return hidden


def _load(args: argparse.Namespace) -> Any:
    """The data set, or a one-line CLIError."""
    try:
        data = data_digits.load_dataset(args.dataset, args.data_dir, download=args.download,
                                        seed=args.seed)
    except FileNotFoundError as exc:
        raise CLIError(str(exc)) from None
    except (IdxFormatError, ConnectionError) as exc:
        raise CLIError(str(exc).replace("\n", " ")) from None
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    if args.dataset == "mnist" and not args.json:
        print(f"mnist: using {data.name} ({data.split})", file=sys.stderr)
    return data


def _train_and_report(args: argparse.Namespace, data: Any, hidden: Any) -> int:
    recipe = example.with_overrides(example.default_recipe(data.name, args.model),
                                    hidden=hidden, epochs=args.epochs,
                                    batch_size=args.batch_size, learning_rate=args.lr,
                                    dropout=args.dropout, l2=args.l2, shift=args.shift,
                                    ensemble=args.ensemble)
    threads = args.threads or None
    if args.plots:
        _check_plotting()
    result = example.train_digits(data, recipe, seed=args.seed, verbose=args.verbose,
                                  monitor_test=bool(args.plots), threads=threads,
                                  progress=_progress(args))

    written: list[str] = []
    if args.plots:
        written = _write_plots(Path(args.plots), data, result)
    if args.save_model:
        written += example.save_result(result, args.save_model,
                                       {"dataset": data.name, "split": data.split,
                                        "test_accuracy": result.test_accuracy})

    if args.json:
        doc = example.result_json(data, result, args.seed)
        doc["blas_threads"] = threads if threads else "default"
        if written:
            doc["files"] = written
        print(json.dumps(doc))
        return 0
    _print_report(args, data, result, written)
    return 0


def _print_report(args: argparse.Namespace, data: Any, result: Any, written: list[str]) -> None:
    r = result.recipe
    print(f"{data.name}: {data.x_train.shape[0]} training / {data.x_test.shape[0]} test images "
          f"({data.split})")
    print(f"{example.describe_network(data, r)}, {r.epochs} epochs, "
          f"batch {r.batch_size}, Adam η={r.learning_rate:g} (cosine), shifts ±{r.shift}px, "
          f"seed {args.seed}: {result.seconds:.1f} s")
    print(f"test accuracy: {result.test_accuracy:.2%} "
          f"({int(result.confusion.trace())}/{int(result.confusion.sum())})")
    print("per-class accuracy:")
    support = result.confusion.sum(axis=1)
    for name, acc, n in zip(data.class_names, result.per_class, support):
        print(f"  {name}: {acc:7.2%}  ({int(n)} images)")
    for path in written:
        print(f"wrote {path}")


def _progress(args: argparse.Namespace) -> Any:
    """Progress on stderr (a bar on a terminal, lines elsewhere) unless --quiet or -v."""
    if args.quiet or args.verbose:
        return None
    from thetanet.cli.progress import FitProgress

    return lambda label, epochs, n: FitProgress(label, epochs, n)


def _check_plotting() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CLIError("--plots needs matplotlib: pip install 'thetanet[plot]'") from None


def _write_plots(directory: Path, data: Any, result: Any) -> list[str]:
    from thetanet.plots import (
        plot_confusion_matrix,
        plot_digit_grid,
        plot_filters,
        plot_learning_curves,
    )

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"cannot create plot directory {directory}: {exc}") from None
    if not os.access(directory, os.W_OK):
        raise CLIError(f"plot directory {directory} is not writable")
    acc = result.test_accuracy
    paths = [plot_confusion_matrix(result.confusion, data.class_names,
                                   directory / "confusion_matrix.png",
                                   title=f"{data.name}: test accuracy {acc:.2%}")]
    images, true, pred = example.misclassified(data, result.predictions, limit=64)
    n_wrong = int((result.predictions != data.y_test).sum())
    paths.append(plot_digit_grid(images, true.tolist(), pred.tolist(),
                                 directory / "misclassified.png",
                                 title=f"{data.name}: misclassified test digits, true → "
                                       f"predicted ({min(n_wrong, 64)} of {n_wrong})"))
    if result.history:
        paths.append(plot_learning_curves(result.history, directory / "learning_curves.png",
                                          title=f"{data.name} (test curves for "
                                                "illustration only)"))
    first = result.model.layers[0]
    if type(first).__name__ == "Conv2D":  # the CNN: what its first layer learnt to look for
        paths.append(plot_filters(first.kernel, directory / "filters.png",
                                  title=f"{data.name}: learnt first-layer filters"))
    return [str(p) for p in paths]
