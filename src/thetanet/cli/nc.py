"""``thetanet nc``: the noun-compound relation classifier (train / predict / evaluate / score)."""

from __future__ import annotations

import argparse
import io as _io
import json
import sys
import time
from pathlib import Path
from typing import Any

from thetanet.checkpoint import CheckpointMismatchError
from thetanet.cli import CLIError, positive_int
from thetanet.cli.nc_search import add_from_study, register_search, settings_from_study
from thetanet.compounds.embeddings import EmbeddingsMissingError
from thetanet.compounds.features import available_features, default_cache_dir
from thetanet.compounds.recipes import PUBLISHED_BEST, recipe
from thetanet.compounds.scoring import format_report, score_labels
from thetanet.compounds.system import NCClassifier
from thetanet.compounds.wordnet import WordNetMissingError
from thetanet.data.tratz import (
    SPLITS,
    Compounds,
    DataFormatError,
    labels_for,
    load_split,
    read_compound_lines,
    read_tsv,
)
from thetanet.files import ModelFileError, atomic_write_text
from thetanet.utils import blas_threads

#: Errors that mean the user's input or environment, shown as one line (exit 2).
USER_ERRORS: tuple[type[BaseException], ...] = (
    DataFormatError, ModelFileError, EmbeddingsMissingError, WordNetMissingError,
    CheckpointMismatchError, FileNotFoundError, PermissionError, IsADirectoryError)


def _ints(text: str) -> list[int]:
    text = text.strip()
    if text in ("", "0", "none"):
        return []
    try:
        out = [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}"
                                         ) from None
    if any(v < 1 for v in out):
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return out


def _names(text: str) -> list[str]:
    """Feature specs from ``a:x=1,y=2,b,c:z=3``: a piece ``key=value`` without a name
    continues the options of the spec before it."""
    out: list[str] = []
    for piece in (t.strip() for t in text.split(",")):
        if not piece:
            continue
        if "=" in piece and ":" not in piece:
            if not out or ":" not in out[-1]:
                raise argparse.ArgumentTypeError(
                    f"option {piece!r} does not follow a NAME:option=value feature spec")
            out[-1] += "," + piece
        else:
            out.append(piece)
    if not out:
        raise argparse.ArgumentTypeError("need at least one feature name")
    known = set(available_features())
    unknown = [name for name in (spec.split(":", 1)[0] for spec in out) if name not in known]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown feature extractor(s) {', '.join(unknown)}; available: "
            f"{', '.join(available_features())}")
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("nc", help="noun-compound relation classification (the main job)",
                       description="Noun-compound relation classification on the Tratz data.")
    nsub = p.add_subparsers(dest="nc_command", metavar="ACTION")

    t = nsub.add_parser("train", help="train on a split, select on val, save the model")
    t.add_argument("--split", choices=SPLITS, default="fine_random")
    t.add_argument("--all-splits", action="store_true", help="train and report all four")
    t.add_argument("--data-dir", help="data root (default: $THETANET_DATA or the user cache)")
    t.add_argument("--cache-dir", help="feature cache (default: $THETANET_CACHE or "
                                       "~/.cache/thetanet/features)")
    t.add_argument("--features", type=_names, default=None,
                   help="comma-separated extractors, each NAME[:opt=value,...] (a wrong name "
                        "lists the known ones; default: the tuned recipe of the split)")
    t.add_argument("--hidden", type=_ints, default=None,
                   help="hidden layer sizes, e.g. 512 or 512,256; 0 = softmax regression")
    t.add_argument("--dropout", type=float, default=None, help="dropout after each hidden layer")
    # the refit always follows the selection now; the flag stays accepted for old scripts
    t.add_argument("--sequential-refit", action="store_true", help=argparse.SUPPRESS)
    t.add_argument("--logit-adjustment", type=float, default=None, metavar="TAU",
                   help="predict argmax log p − TAU·log(training relation frequency); TAU > 0 "
                        "favours rarer relations (0: plain argmax)")
    t.add_argument("--input-dropout", type=float, default=None,
                   help="dropout of the input features (their stored entries)")
    t.add_argument("--l2", type=float, default=None)
    t.add_argument("--lr", type=float, default=None, help="Adam learning rate")
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--max-epochs", type=int, default=None)
    t.add_argument("--patience", type=int, default=None)
    t.add_argument("--seed", type=int, default=0, help="first seed of the ensemble")
    t.add_argument("--ensemble", type=int, default=None, help="number of seeds to average")
    t.add_argument("--out", default=None, help="model directory (default: models/nc-SPLIT)")
    t.add_argument("--no-refit", action="store_true",
                   help="save the train-only model instead of refitting on train+val")
    t.add_argument("--plots", default=None, help="write confusion matrix + learning curves")
    t.add_argument("--json", action="store_true", help="print the report as JSON")
    t.add_argument("--threads", type=int, default=1,
                   help="BLAS threads (default 1: these products are small; 0 = BLAS default)")
    t.add_argument("--quiet", action="store_true", help="no per-relation table")
    t.add_argument("--checkpoint", default=None, metavar="DIR",
                   help="write resumable training checkpoints under DIR")
    t.add_argument("--resume", action="store_true", help="continue from --checkpoint DIR")
    t.add_argument("--checkpoint-every", type=positive_int, default=None, metavar="N",
                   help="also checkpoint every N batches (default: at each epoch end)")
    add_from_study(t)
    t.set_defaults(func=cmd_train)
    register_search(nsub, SPLITS)

    pr = nsub.add_parser("predict", help="predict relations for compounds")
    pr.add_argument("--model", required=True)
    pr.add_argument("--input", default="-", help="TSV modifier<TAB>head[...] or '-' (stdin, "
                                                 "'modifier head' lines)")
    pr.add_argument("--output", default="-", help="output TSV (default stdout)")
    pr.add_argument("--cache-dir", default=None)
    pr.set_defaults(func=cmd_predict)

    ev = nsub.add_parser("evaluate", help="score a model on a gold TSV")
    ev.add_argument("--model", required=True)
    ev.add_argument("--input", required=True, help="gold TSV modifier<TAB>head<TAB>RELATION")
    ev.add_argument("--cache-dir", default=None)
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_evaluate)

    sc = nsub.add_parser("score", help="the competition scorer: gold vs predictions")
    sc.add_argument("--gold", required=True)
    sc.add_argument("--pred", required=True)
    sc.add_argument("--json", action="store_true")
    sc.set_defaults(func=cmd_score)
    p.set_defaults(func=lambda args: _missing_action(p))


def _missing_action(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


def _guard(fn: Any) -> Any:
    """Turn the library's user-facing errors into one-line CLI errors (exit 2)."""
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except USER_ERRORS as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in msg:
                msg = f"{exc.filename}: {msg}"
            raise CLIError(msg) from exc
    return wrapped


def _cache(args: argparse.Namespace) -> Path:
    return Path(args.cache_dir) if getattr(args, "cache_dir", None) else default_cache_dir()


def _settings_for(split: str, args: argparse.Namespace) -> Any:
    s = settings_from_study(split, args) if args.from_study else recipe(split)
    overrides = {"features": args.features, "hidden": args.hidden, "dropout": args.dropout,
                 "input_dropout": args.input_dropout, "l2": args.l2, "learning_rate": args.lr,
                 "batch_size": args.batch_size, "max_epochs": args.max_epochs,
                 "patience": args.patience, "logit_adjustment": args.logit_adjustment}
    for k, v in overrides.items():
        if v is not None:
            setattr(s, k, v)
    n = args.ensemble if args.ensemble is not None else len(s.seeds)
    if n < 1:
        raise CLIError("--ensemble must be at least 1")
    s.seeds = [args.seed + i for i in range(n)]
    try:
        s.validate()
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    return s


@_guard
def cmd_train(args: argparse.Namespace) -> int:
    if args.threads < 0:
        raise CLIError(f"--threads must be 0 (BLAS default) or more, got {args.threads}")
    with blas_threads(args.threads or None):
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    if args.resume and not args.checkpoint:
        raise CLIError("--resume needs --checkpoint DIR (where the interrupted run wrote them)")
    splits = list(SPLITS) if args.all_splits else [args.split]
    results = {}
    for split in splits:
        t0 = time.perf_counter()
        settings = _settings_for(split, args)
        train, val = load_split(split, args.data_dir)
        clf = NCClassifier(settings, list(labels_for(split)))
        ck = {"checkpoint_dir": None if args.checkpoint is None
              else Path(args.checkpoint) / split,
              "resume": args.resume, "checkpoint_every": args.checkpoint_every}
        chosen = clf.fit(train, val, cache_dir=_cache(args), **ck).selection
        assert chosen is not None  # a fit with val data selects
        val_result = chosen.scores  # the train-only ensemble on val
        selection = chosen.headline
        if not args.json:
            print(f"== {split}: features={','.join(settings.features)} "
                  f"hidden={settings.hidden or 'none (softmax regression)'} "
                  f"seeds={settings.seeds} epochs={chosen.epochs}")
            print(format_report(val_result, split, "val (train-only model, used for selection)",
                                per_relation=not args.quiet))
        if args.plots:
            _plots(Path(args.plots) / split, clf, val_result)
        if not args.no_refit:
            clf.refit(train, val, cache_dir=_cache(args), **ck)
        out = Path(args.out) / split if (args.out and args.all_splits) else Path(
            args.out or f"models/nc-{split}")
        clf.save(out, metadata={"split": split, "refit_on_val": not args.no_refit})
        saved_val = clf.evaluate(val) if not args.no_refit else val_result
        elapsed = time.perf_counter() - t0
        results[split] = {"val": selection, "saved_model_on_val": {
            k: saved_val[k] for k in ("accuracy", "macro_f1", "weighted_f1")},
            "published_best_test_weighted_f1": PUBLISHED_BEST[split], "model": str(out),
            "refit": not args.no_refit, "seconds": round(elapsed, 1),
            "per_relation": val_result["per_relation"]}
        if not args.json:
            if not args.no_refit:
                print(f"saved model (refit on train+val, {len(train) + len(val)} compounds) "
                      f"on val — val was in its training data: weighted-F1="
                      f"{saved_val['weighted_f1']:.4f}")
            print(f"model saved to {out}  ({elapsed:.1f} s)\n")
    if args.json:
        print(json.dumps(results, indent=1))
    elif len(splits) > 1:
        print(f"{'split':<16} {'val acc':>8} {'val mF1':>8} {'val wF1':>8} {'best pub.':>9}")
        for split, r in results.items():
            v = r["val"]
            print(f"{split:<16} {v['accuracy']:8.4f} {v['macro_f1']:8.4f} "
                  f"{v['weighted_f1']:8.4f} {PUBLISHED_BEST[split]:9.3f}")
    return 0


def _plots(directory: Path, clf: Any, result: dict[str, Any]) -> None:
    try:
        from thetanet import plots
    except ImportError as exc:  # matplotlib missing
        raise CLIError(f"--plots needs matplotlib: pip install 'thetanet[plot]' ({exc})"
                       ) from exc
    import numpy as np

    directory.mkdir(parents=True, exist_ok=True)
    plots.plot_confusion_matrix(np.array(result["confusion"]), result["labels"],
                                directory / "confusion_matrix.png", title="val")
    for i, hist in enumerate(clf.histories):
        plots.plot_learning_curves(hist, directory / f"learning_curves_seed{i}.png")


def _read_input(path: str) -> Compounds:
    if path == "-":
        raw = sys.stdin.buffer.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CLIError(f"<stdin>: not valid UTF-8 (byte {exc.start})") from exc
        return read_compound_lines(text.splitlines(), source="<stdin>")
    return read_tsv(path, require_label=False)


@_guard
def cmd_predict(args: argparse.Namespace) -> int:
    data = _read_input(args.input)
    clf = NCClassifier.load(args.model, cache_dir=_cache(args))
    labels, probs = clf.predict(data)
    buf = _io.StringIO()
    for m, h, lab, p in zip(data.modifiers, data.heads, labels, probs):
        buf.write(f"{m}\t{h}\t{lab}\t{p:.6f}\n")
    if args.output == "-":
        sys.stdout.write(buf.getvalue())
    else:
        atomic_write_text(args.output, buf.getvalue())
    return 0


@_guard
def cmd_evaluate(args: argparse.Namespace) -> int:
    clf = NCClassifier.load(args.model, cache_dir=_cache(args))
    gold = read_tsv(args.input, require_label=True, known_labels=clf.labels)
    result = clf.evaluate(gold)
    if args.json:
        print(json.dumps({k: result[k] for k in ("n", "accuracy", "macro_f1", "weighted_f1",
                                                 "per_relation")}, indent=1))
    else:
        print(format_report(result, clf.metadata.get("split"), Path(args.input).name))
    return 0


@_guard
def cmd_score(args: argparse.Namespace) -> int:
    gold = read_tsv(args.gold, require_label=True)
    pred = read_tsv(args.pred, require_label="prediction")
    problems = []
    if len(gold) != len(pred):
        problems.append(f"{args.gold} has {len(gold)} compounds but {args.pred} has {len(pred)}")
    for i, (gm, gh, pm, ph) in enumerate(zip(gold.modifiers, gold.heads, pred.modifiers,
                                             pred.heads), start=1):
        if (gm, gh) != (pm, ph):
            problems.append(f"line {i}: gold has '{gm} {gh}' but predictions have '{pm} {ph}'")
    if problems:
        for msg in problems[:20]:
            print(f"thetanet nc score: {msg}", file=sys.stderr)
        if len(problems) > 20:
            print(f"thetanet nc score: ... and {len(problems) - 20} more", file=sys.stderr)
        raise CLIError(f"{len(problems)} mismatch(es) between gold and predictions; both files "
                       "must list the same compounds in the same order")
    result = score_labels(gold.labels or [], pred.labels)
    if args.json:
        print(json.dumps({k: result[k] for k in ("n", "accuracy", "macro_f1", "weighted_f1",
                                                 "per_relation")}, indent=1))
    else:
        print(format_report(result, None, Path(args.gold).name))
    return 0
