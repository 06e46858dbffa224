"""``thetanet nc``: the noun-compound relation classifier (train / predict / evaluate / score)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from thetanet.checkpoint import CheckpointMismatchError
from thetanet.cli import CLIError, nc_predict, positive_int
from thetanet.cli import arguments as checks
from thetanet.cli.nc_progress import TrainProgress
from thetanet.cli.nc_search import add_from_study, register_search, settings_from_study
from thetanet.cli.nc_settings_report import describe_settings, settings_json, settings_origin
from thetanet.compounds.embeddings import EmbeddingsMissingError
from thetanet.compounds.features import available_features, default_cache_dir
from thetanet.compounds.progress import Progress
from thetanet.compounds.recipes import PUBLISHED_BEST, recipe
from thetanet.compounds.scoring import alignment_problems, format_report, score_labels
from thetanet.compounds.system import NCClassifier
from thetanet.compounds.wordnet import WordNetMissingError
from thetanet.data.tratz import (
    SPLITS,
    Compounds,
    DataFormatError,
    labels_for,
    load_split,
    read_tsv,
)
from thetanet.files import ModelFileError
from thetanet.layers import ParameterBudgetError
from thetanet.utils import blas_threads

#: Errors that mean the user's input or environment, shown as one line (exit 2).
USER_ERRORS: tuple[type[BaseException], ...] = (
    DataFormatError, ModelFileError, EmbeddingsMissingError, WordNetMissingError,
    CheckpointMismatchError, FileNotFoundError, PermissionError, IsADirectoryError,
    ParameterBudgetError)


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

    _register_train(nsub)
    register_search(nsub, SPLITS)
    _register_predict(nsub)
    _register_evaluate(nsub)
    _register_score(nsub)
    p.set_defaults(func=lambda args: _missing_action(p))


RECIPE_DEFAULT = "default: the split's recipe, see below"


def _register_train(nsub: argparse._SubParsersAction) -> None:
    t = nsub.add_parser("train", help="train on a split, select on val, save the model",
                        description="Train on a split's train part, choose the epochs on val "
                                    "(weighted-F1),\nrefit on train + val, save the model. "
                                    "Progress goes to stderr, the result to stdout.",
                        epilog=_recipes_epilog(),
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--split", choices=SPLITS, default="fine_random",
                   help="the Tratz split (default: %(default)s)")
    t.add_argument("--all-splits", action="store_true", help="train and report all four")
    t.add_argument("--data-dir", help="data root (default: $THETANET_DATA or the user cache)")
    t.add_argument("--cache-dir", help="feature cache (default: $THETANET_CACHE or "
                                       "~/.cache/thetanet/features)")
    _add_recipe_options(t)
    _add_run_options(t)
    add_from_study(t)
    t.set_defaults(func=cmd_train)


def _add_recipe_options(t: argparse.ArgumentParser) -> None:
    """The network and features options; each defaults to the split's recipe."""
    recipe_default = RECIPE_DEFAULT
    t.add_argument("--features", type=_names, default=None,
                   help="comma-separated extractors, each NAME[:opt=value,...] (a wrong name "
                        f"lists the known ones; {recipe_default})")
    t.add_argument("--hidden", type=_ints, default=None,
                   help="hidden layer sizes, e.g. 512 or 512,256; 0 = softmax regression "
                        f"({recipe_default})")
    t.add_argument("--dropout", type=float, default=None,
                   help=f"dropout after each hidden layer ({recipe_default})")
    t.add_argument("--sequential-refit", action="store_true",
                   help="refit after the selection instead of in a second thread one epoch "
                        "behind it (the same model, bit for bit; slower on two cores or more)")
    t.add_argument("--logit-adjustment", type=float, default=None, metavar="TAU",
                   help="predict argmax log p − TAU·log(training relation frequency); TAU > 0 "
                        f"favours rarer relations (0: plain argmax; {recipe_default})")
    t.add_argument("--neighbours", default=None, metavar="SPEC",
                   help="the neighbours block (relation histogram of the nearest training "
                        "compounds): k=,temperature=,weight=,exclude=shared-word|self,"
                        "space=minilm+gloss|minilm|minilm+gloss+wordnet; several blocks "
                        "separated by ';'; 'off' removes it "
                        f"({recipe_default})")
    t.add_argument("--input-dropout", type=float, default=None,
                   help=f"dropout of the input features, their stored entries ({recipe_default})")
    t.add_argument("--l2", type=float, default=None, help=f"L2 penalty ({recipe_default})")
    t.add_argument("--lr", type=float, default=None,
                   help=f"Adam learning rate ({recipe_default})")
    t.add_argument("--batch-size", type=int, default=None, help=f"({recipe_default})")
    t.add_argument("--max-epochs", type=int, default=None, help=f"({recipe_default})")
    t.add_argument("--patience", type=int, default=None,
                   help=f"epochs without a better val-F1 before stopping ({recipe_default})")


def _add_run_options(t: argparse.ArgumentParser) -> None:
    """Seeds, outputs, threads and checkpoints of `nc train`."""
    t.add_argument("--seed", type=int, default=0,
                   help="first seed of the ensemble (default: %(default)s)")
    t.add_argument("--ensemble", type=int, default=None,
                   help=f"number of seeds to average ({RECIPE_DEFAULT})")
    t.add_argument("--out", default=None, help="model directory (default: models/nc-SPLIT)")
    t.add_argument("--no-refit", action="store_true",
                   help="save the train-only model instead of refitting on train+val")
    t.add_argument("--plots", default=None, metavar="DIR",
                   help="write the val confusion matrix and the learning curves to DIR/SPLIT/ "
                        "(the files are listed at the end)")
    t.add_argument("--json", action="store_true", help="print the result as JSON")
    t.add_argument("--threads", type=int, default=1,
                   help="BLAS threads (default 1: these products are small; 0 = BLAS default)")
    t.add_argument("--quiet", action="store_true",
                   help="print only the result (the scores and where the model went): no "
                        "progress on stderr, and no settings, per-relation table or hints "
                        "on stdout")
    t.add_argument("--checkpoint", default=None, metavar="DIR",
                   help="write resumable training checkpoints under DIR (the refit then "
                        "follows the selection)")
    t.add_argument("--resume", action="store_true", help="continue from --checkpoint DIR")
    t.add_argument("--checkpoint-every", type=positive_int, default=None, metavar="N",
                   help="also checkpoint every N batches (default: at each epoch end)")


def _register_predict(nsub: argparse._SubParsersAction) -> None:
    pr = nsub.add_parser("predict", help="predict relations for compounds",
                         description="Predict relations, streaming: any number of lines in "
                                     "bounded memory. Words: at most 100 characters, no "
                                     "control characters. A first line 'modifier<TAB>head' "
                                     "is a header and skipped.")
    pr.add_argument("--model", required=True)
    pr.add_argument("--input", default="-", help="TSV modifier<TAB>head[...] or '-' (stdin, "
                                                 "'modifier head' lines)")
    pr.add_argument("--output", default="-",
                    help="output TSV (default stdout); a regular file is replaced atomically, "
                         "a FIFO, terminal or device written in place")
    pr.add_argument("--cache-dir", default=None)
    pr.add_argument("--skip-bad-lines", action="store_true",
                    help="skip malformed lines and report them on stderr (default: the first "
                         "one is an error)")
    pr.set_defaults(func=cmd_predict)


def _register_evaluate(nsub: argparse._SubParsersAction) -> None:
    ev = nsub.add_parser("evaluate", help="score a model on a gold TSV")
    ev.add_argument("--model", required=True)
    ev.add_argument("--input", required=True, help="gold TSV modifier<TAB>head<TAB>RELATION")
    ev.add_argument("--cache-dir", default=None)
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_evaluate)


def _register_score(nsub: argparse._SubParsersAction) -> None:
    sc = nsub.add_parser("score", help="the competition scorer: gold vs predictions")
    sc.add_argument("--gold", required=True, metavar="GOLD_TSV",
                    help="the gold compounds: modifier<TAB>head<TAB>RELATION, one a line")
    sc.add_argument("--pred", required=True, metavar="PRED_TSV",
                    help="the predictions for the same compounds in the same order: "
                         "modifier<TAB>head<TAB>RELATION[<TAB>...] (what `nc predict "
                         "--output` writes; columns after the third are ignored)")
    sc.add_argument("--model", default=None,
                    help="the model that made the predictions: warns when it was trained on "
                         "compounds of the gold file")
    sc.add_argument("--json", action="store_true")
    sc.set_defaults(func=cmd_score)


def _recipes_epilog() -> str:
    """The defaults of each split (its recipe) for ``nc train --help``."""
    lines = ["defaults per split (the recipes chosen on val: "
             "src/thetanet/compounds/recipes.py):"]
    for split in SPLITS:
        s = recipe(split)
        extra = [f"input dropout {s.input_dropout:.3g}" if s.input_dropout else "",
                 f"logit adjustment {s.logit_adjustment:.3g}" if s.logit_adjustment else "",
                 f"batch {s.batch_size}", f"lr {s.learning_rate:.3g}",
                 f"neighbours {s.neighbours}" if s.neighbours else ""]
        lines.append(textwrap.fill(f"{split:<15} {_describe(s)}, "
                                   f"{', '.join(e for e in extra if e)}; {len(s.seeds)} seed(s)",
                                   100, initial_indent="  ", subsequent_indent=" " * 6))
        lines.append(textwrap.fill(f"features {','.join(s.features)}", 100,
                                   initial_indent=" " * 6, subsequent_indent=" " * 8,
                                   break_on_hyphens=False))
    base = recipe(SPLITS[0])
    lines.append(f"  every split: max epochs {base.max_epochs}, patience {base.patience}")
    return "\n".join(lines)


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
    if args.neighbours is not None:
        s.neighbours = None if args.neighbours == "off" else args.neighbours
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
    checks.check_train_args(args, list(SPLITS) if args.all_splits else [args.split])
    with blas_threads(args.threads or None):
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    if args.resume and not args.checkpoint:
        raise CLIError("--resume needs --checkpoint DIR (where the interrupted run wrote them)")
    splits = list(SPLITS) if args.all_splits else [args.split]
    progress = Progress() if args.quiet else TrainProgress()
    results = {}
    for split in splits:
        t0 = time.perf_counter()
        progress.phase(f"{split}: loading the split")
        settings = _settings_for(split, args)
        train, val = load_split(split, args.data_dir)
        origin = settings_origin(split, args)
        progress.phase(f"{split}: {len(train):,} train and {len(val):,} val compounds; "
                       f"{_describe(settings)}")
        progress.phase(f"{split}: settings from {origin}: {describe_settings(settings)}")
        clf = NCClassifier(settings, list(labels_for(split)))
        ck = {"checkpoint_dir": None if args.checkpoint is None
              else Path(args.checkpoint) / split,
              "resume": args.resume, "checkpoint_every": args.checkpoint_every}
        if args.no_refit:
            clf.fit(train, val, cache_dir=_cache(args), progress=progress, **ck)
        else:
            clf.select_and_refit(train, val, cache_dir=_cache(args), progress=progress,
                                 alongside=not args.sequential_refit, **ck)
        chosen = clf.selection
        assert chosen is not None  # a fit with val data selects
        val_result = chosen.scores  # the train-only ensemble on val
        out = Path(args.out) / split if (args.out and args.all_splits) else Path(
            args.out or f"models/nc-{split}")
        progress.phase(f"{split}: saving the model to {out}")
        clf.save(out, metadata={"split": split, "refit_on_val": not args.no_refit})
        written = _plots(Path(args.plots) / split, split, clf, chosen) if args.plots else []
        elapsed = time.perf_counter() - t0
        trained_on = len(train) + (0 if args.no_refit else len(val))
        results[split] = {
            "val": chosen.headline, "val_is": VAL_IS, "per_relation": val_result["per_relation"],
            "published_best_test_weighted_f1": PUBLISHED_BEST[split], "model": str(out),
            "refit": not args.no_refit, "trained_on_compounds": trained_on,
            "epochs": chosen.epochs, "seconds": round(elapsed, 1),
            "plots": [str(p) for p in written], **settings_json(settings, origin)}
        if args.no_refit:  # the saved model is the one scored on val
            results[split]["saved_model_on_val"] = chosen.headline
        if not args.json:
            _print_result(split, settings, chosen, out, args, trained_on, elapsed, written,
                          origin)
    if args.json:
        print(json.dumps(results, indent=1))
    elif len(splits) > 1:
        print(f"{'split':<16} {'val acc':>8} {'val mF1':>8} {'val wF1':>8} {'best pub.':>9}"
              f"   (val: selection, not test; published: test)")
        for split, r in results.items():
            v = r["val"]
            print(f"{split:<16} {v['accuracy']:8.4f} {v['macro_f1']:8.4f} "
                  f"{v['weighted_f1']:8.4f} {PUBLISHED_BEST[split]:9.3f}")
    return 0


#: What the val scores of ``nc train`` are (printed and in its JSON).
VAL_IS = "val (selection), not test"


def _describe(settings: Any) -> str:
    """The model in a few words: "MLP 256, dropout 0.5" or "softmax regression"."""
    if not settings.hidden:
        return "softmax regression" + (f", L2 {settings.l2:.3g}" if settings.l2 else "")
    return (f"MLP {'-'.join(map(str, settings.hidden))} {settings.activation}"
            + (f", dropout {settings.dropout:.3g}" if settings.dropout else ""))


def _print_result(split: str, settings: Any, chosen: Any, out: Path,
                  args: argparse.Namespace, trained_on: int, elapsed: float,
                  plots: list[Path], origin: str) -> None:
    """The result on stdout; without ``--quiet`` also the settings, the table and what to
    do next."""
    if not args.quiet:
        print(f"== {split}: {_describe(settings)}; epochs chosen on val={chosen.epochs}\n"
              f"   settings from {origin}:\n   {describe_settings(settings)}")
    print(format_report(chosen.scores, split, VAL_IS, per_relation=not args.quiet))
    how = ("trained on train only" if args.no_refit
           else "refit on train + val, so it has seen val: the val scores above are those of "
                "the train-only model that chose the epochs")
    print(f"model saved to {out} ({elapsed:.1f} s): {how}; {trained_on:,} compounds")
    if args.quiet:
        return
    model = shlex.quote(str(out))
    print("next:\n"
          f"  echo \"olive oil\" | thetanet nc predict --model {model}\n"
          f"  thetanet nc predict --model {model} --input compounds.tsv --output pred.tsv\n"
          f"  thetanet nc evaluate --model {model} --input gold.tsv   # held-out data only")
    if plots:
        print(f"plots written to {plots[0].parent}: {', '.join(p.name for p in plots)}")
    print()


def _plots(directory: Path, split: str, clf: Any, chosen: Any) -> list[Path]:
    """The selection's confusion matrix on val and each member's learning curves, with the
    chosen epoch marked; returns the files written."""
    try:
        from thetanet import plots
    except ImportError as exc:  # matplotlib missing
        raise CLIError(f"--plots needs matplotlib: pip install 'thetanet[plot]' ({exc})"
                       ) from exc
    import numpy as np

    model = _describe(clf.settings)
    result = chosen.scores
    directory.mkdir(parents=True, exist_ok=True)
    written = [plots.plot_confusion_matrix(
        np.array(result["confusion"]), result["labels"], directory / "confusion_matrix.png",
        title=f"{split}, {model}: {VAL_IS}, weighted-F1 {result['weighted_f1']:.3f}")]
    for i, (hist, best) in enumerate(zip(chosen.histories, chosen.best_epochs)):
        written.append(plots.plot_learning_curves(
            hist, directory / f"learning_curves_seed{i}.png", chosen_epoch=best,
            title=f"{split}, {model}, seed {clf.settings.seeds[i]}: selection run "
                  f"(val weighted-F1), chosen epoch {best + 1}"))
    return written


@_guard
def cmd_predict(args: argparse.Namespace) -> int:
    """Streaming prediction: see :mod:`thetanet.cli.nc_predict`."""
    checks.check_predict_args(args)
    return nc_predict.predict(args, nc_predict.load(args.model, _cache(args)))


@_guard
def cmd_evaluate(args: argparse.Namespace) -> int:
    checks.check_evaluate_args(args)
    clf = NCClassifier.load(args.model, cache_dir=_cache(args))
    gold = read_tsv(args.input, require_label=True, known_labels=clf.labels)
    result = clf.evaluate(gold)
    _print_score(result, clf, gold, Path(args.input).name, args.json)
    return 0


def _print_score(result: dict[str, Any], clf: NCClassifier | None, gold: Compounds,
                 name: str, as_json: bool) -> None:
    """A score on stdout with what the model has seen of ``gold``: a warning on stderr when it
    has seen some, and the published (test) best beside it only when it has seen none."""
    seen = clf.overlap(gold) if clf is not None else None
    warning = seen.warning(name) if seen is not None else None
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
    if as_json:
        print(json.dumps({**{k: result[k] for k in ("n", "accuracy", "macro_f1", "weighted_f1",
                                                    "per_relation")},
                          "overlap": None if seen is None else seen.as_json()}, indent=1))
        return
    held_out = seen is not None and not seen.seen
    title = name if not seen or held_out else f"{name} (seen by the model: {seen.seen:,} of " \
                                              f"{seen.total:,} compounds)"
    split = clf.metadata.get("split") if clf is not None and held_out else None
    print(format_report(result, split, title))
    if clf is not None and seen is None:
        print("  (this model does not record what it was trained on, so the published best "
              "is not shown beside it)")


@_guard
def cmd_score(args: argparse.Namespace) -> int:
    checks.check_score_args(args)
    gold = read_tsv(args.gold, require_label=True)
    pred = read_tsv(args.pred, require_label="prediction")
    problems = alignment_problems(list(zip(gold.modifiers, gold.heads)),
                                  list(zip(pred.modifiers, pred.heads)), args.gold, args.pred)
    if problems:
        for msg in problems[:20]:
            print(f"thetanet nc score: {msg}", file=sys.stderr)
        if len(problems) > 20:
            print(f"thetanet nc score: ... and {len(problems) - 20} more", file=sys.stderr)
        raise CLIError(f"{len(problems)} mismatch(es) between gold and predictions; both files "
                       "must list the same compounds in the same order")
    result = score_labels(gold.labels or [], pred.labels)
    clf = NCClassifier.load(args.model, cache_dir=False) if args.model else None
    _print_score(result, clf, gold, Path(args.gold).name, args.json)
    return 0
