"""``thetanet nc search`` (and ``digits --search``, ``nc train --from-study``): the architecture
search on Optuna from the command line. Wired by ``cli/nc.py`` and ``cli/digits.py``; this
module has no ``register`` of its own."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from thetanet.cli import CLIError, positive_int

STORAGE_HELP = ("Optuna storage URL or SQLite file (default: ~/.local/share/thetanet/"
                "thetanet-search.db, under $XDG_DATA_HOME when set; postgresql://user:pw@host/"
                "db to share the study between machines)")


def register_search(nsub: argparse._SubParsersAction, splits: tuple[str, ...]) -> None:
    """Add ``search`` to the ``nc`` subcommands."""
    s = nsub.add_parser(
        "search", help="search the architecture on val (Optuna; shareable between machines)",
        description="Search settings (features and weights, hidden layers, units, activation, "
                    "dropout, L2, learning rate, batch size, logit adjustment) on val "
                    "weighted-F1. The same command in several processes or on several "
                    "machines with one --storage shares the study; each worker pulls its "
                    "own trials. Ctrl-C records the running trial and exits 130.")
    s.add_argument("--split", choices=splits, default="fine_random")
    s.add_argument("--trials", type=positive_int, default=20,
                   help="trials this worker runs (default 20)")
    s.add_argument("--max-trials", type=positive_int, default=None,
                   help="stop once the study holds this many trials (all workers together)")
    s.add_argument("--timeout", type=float, default=None, metavar="SEC",
                   help="start no new trial after SEC seconds")
    s.add_argument("--storage", default=None, help=STORAGE_HELP)
    s.add_argument("--study", default=None, help="study name (default nc-SPLIT)")
    s.add_argument("--seed", type=int, default=0,
                   help="seed of the sampler and first training seed (default 0)")
    s.add_argument("--seeds", type=positive_int, default=1,
                   help="training seeds per trial; the objective is their mean (default 1; "
                        "on a lexical split use 3: one seed's spread there exceeds most "
                        "differences between trials)")
    s.add_argument("--space", default="full",
                   help="'full' (default), 'quick' (one cheap extractor, small nets: a demo) "
                        "or a JSON file of NCSpace fields overriding 'full'")
    s.add_argument("--warm-start", action="store_true",
                   help="try the split's recipe (recipes.py) first, unless the study has it")
    s.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median")
    s.add_argument("--heartbeat", type=positive_int, default=30, metavar="SEC",
                   help="heartbeat of running trials; a worker silent for 2×SEC is "
                        "considered dead and its trial failed (default 30)")
    s.add_argument("--show", action="store_true", help="report the study, run no trial")
    s.add_argument("--json", action="store_true", help="report as JSON")
    s.add_argument("--plots", default=None, metavar="DIR",
                   help="write Optuna's optimisation history and parameter importances")
    s.add_argument("--data-dir", help="data root (default: $THETANET_DATA or the user cache)")
    s.add_argument("--cache-dir", help="feature cache (default: the user cache)")
    s.add_argument("--threads", type=int, default=1, help="BLAS threads (0 = BLAS default)")
    s.add_argument("-v", "--verbose", action="store_true",
                   help="one line per epoch (and Optuna's own lines)")
    s.add_argument("-q", "--quiet", action="store_true",
                   help="no progress on stderr (by default: a line per trial with its value, "
                        "the best so far and its time; a bar on a terminal)")
    s.set_defaults(func=cmd_search)


def add_from_study(t: argparse.ArgumentParser) -> None:
    """``nc train --from-study [--storage URL] [--study NAME]``."""
    t.add_argument("--from-study", action="store_true",
                   help="train the settings of the best trial of `nc search` (printed first)")
    t.add_argument("--storage", default=None, help=STORAGE_HELP)
    t.add_argument("--study", default=None, help="study name (default nc-SPLIT)")


def settings_from_study(split: str, args: argparse.Namespace) -> Any:
    """The best trial's settings for ``nc train --from-study``, printed before training."""
    from thetanet.cli.search_checks import check_storage
    from thetanet.compounds.search import best_settings

    check_storage(args.storage, writing=False)
    try:
        settings, origin = _call(best_settings, split, storage=args.storage,
                                 study_name=args.study)
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    args.study_origin = origin  # for the summary and --json (cli/nc_settings_report.py)
    out = sys.stderr if getattr(args, "json", False) else sys.stdout
    print(f"settings of study {origin['study']!r} trial {origin['trial']} (val weighted-F1 "
          f"{origin['value']:.4f}, mean of seeds {origin['seeds']}): "
          f"{json.dumps(_public(settings), sort_keys=True)}", file=out, flush=True)
    return settings


def _public(settings: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: v for k, v in asdict(settings).items() if k != "seeds"}


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Optuna missing or a database that cannot be reached: one line, exit 2."""
    try:
        return fn(*args, **kwargs)
    except ImportError as exc:
        raise CLIError(f"the search needs Optuna: pip install 'thetanet[search]' ({exc})"
                       ) from exc
    except Exception as exc:
        from optuna.exceptions import StorageInternalError
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, (SQLAlchemyError, StorageInternalError)):
            cause = exc.__cause__ or exc.__context__
            detail = cause if isinstance(cause, SQLAlchemyError) else exc
            msg = (str(detail).splitlines() or [type(detail).__name__])[0]
            raise CLIError(f"storage error: {msg[:300]}") from exc
        raise


@contextlib.contextmanager
def _quiet_optuna(verbose: bool) -> Iterator[None]:
    """Optuna's per-trial lines only with --verbose (without, an interrupted trial's
    traceback is not logged twice: the error itself ends the command)."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def _space(text: str) -> Any:
    from thetanet.compounds.search import SPACES, NCSpace

    if text in SPACES:
        return SPACES[text]
    path = Path(text)
    if not path.is_file():
        raise CLIError(f"--space: {text!r} is neither {' nor '.join(SPACES)} nor a JSON file")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return NCSpace.from_dict({**SPACES["full"].to_dict(), **doc})
    except (ValueError, TypeError) as exc:
        raise CLIError(f"--space {text}: {exc}") from exc


def _recipe_params(split: str, space: Any) -> dict[str, Any]:
    from thetanet.compounds.recipes import recipe
    from thetanet.compounds.search import params_from_settings

    try:
        return params_from_settings(recipe(split), space)
    except ValueError as exc:
        raise CLIError(f"--warm-start: the {split} recipe does not fit --space: {exc}"
                       ) from exc


def _progress(verbose: bool) -> Any:
    if not verbose:
        return None
    return lambda trial, step, value: print(f"trial {trial} step {step}: val {value:.4f}",
                                            file=sys.stderr, flush=True)


def search_progress(args: argparse.Namespace, what: str, header: str) -> Any:
    """The trials' progress on stderr (``None`` with --quiet), its first line said at once."""
    if getattr(args, "quiet", False):
        return None
    from thetanet.cli.progress import SearchProgress

    shown = SearchProgress(what, args.trials, every=1e9 if args.verbose else 5.0)
    shown.start(header)
    return shown


def _hooks(args: argparse.Namespace, shown: Any) -> dict[str, Any]:
    """``on_epoch`` / ``on_trial`` for the search: -v's epoch lines, else the progress's."""
    return {"on_epoch": _progress(args.verbose) or (shown.on_epoch if shown else None),
            "on_trial": shown.on_trial if shown else None}


def cmd_search(args: argparse.Namespace) -> int:
    from thetanet.cli.search_checks import check_search_args
    from thetanet.utils import blas_threads

    check_search_args(args)  # before any work: outputs, storage, timeout
    if args.threads < 0:
        raise CLIError(f"--threads must be 0 (BLAS default) or more, got {args.threads}")
    with blas_threads(args.threads or None), _quiet_optuna(args.verbose):
        return _search(args)


def _search(args: argparse.Namespace) -> int:
    from thetanet.compounds.search import search_nc, study_name_for
    from thetanet.search import summary

    name = args.study or study_name_for(args.split)
    study = None
    if args.show:
        study = _existing(args.storage, name)
        doc = summary(study)
    else:
        from thetanet.data.paths import cache_root
        from thetanet.data.tratz import labels_for, load_split

        space = _space(args.space)
        enqueue = [_recipe_params(args.split, space)] if args.warm_start else []
        shown = search_progress(args, "val weighted-F1", f"search {name} on {args.split}: "
                                f"{args.trials} trial(s), objective val weighted-F1 (mean "
                                f"of {args.seeds} seed(s)); a line per trial")
        train, val = load_split(args.split, args.data_dir)
        cache = Path(args.cache_dir) if args.cache_dir else cache_root() / "features"
        try:
            done, doc = _call(search_nc, args.split, train, val, labels_for(args.split),
                              space=space, n_trials=args.trials, timeout=args.timeout,
                              max_trials=args.max_trials, storage=args.storage,
                              study_name=name, seed=args.seed, seeds=args.seeds,
                              pruner=args.pruner, cache_dir=cache,
                              heartbeat_interval=args.heartbeat, enqueue=enqueue,
                              **_hooks(args, shown))
        except ValueError as exc:
            raise CLIError(str(exc)) from exc
        finally:
            if shown is not None:
                shown.close()
        doc["trials_run"] = done
    if args.plots:
        study = study or _existing(args.storage, name)
        doc["plots"] = [str(p) for p in write_plots_or_fail(study, args.plots)]
    print_summary(doc, args.json)
    return 0


def _existing(storage: str | None, name: str) -> Any:
    from thetanet.search import load_existing_study

    try:
        return _call(load_existing_study, storage, name)
    except ValueError as exc:
        raise CLIError(str(exc)) from exc


#: Fewer finished trials than this: the importances are shown with a caveat.
FEW_TRIALS = 20


def _what(study: Any) -> tuple[str, str]:
    """(what was searched, the objective) for plot titles: "nc-fine_random on fine_random",
    "val weighted-F1"."""
    from thetanet.search import SETUP_ATTR

    setup = study.user_attrs.get(SETUP_ATTR) or {}
    metric = str(setup.get("metric", "objective"))
    metric = metric if metric.startswith("val") else f"val {metric}"
    split = setup.get("split")
    return (f"{study.study_name}" + (f" on {split}" if split else ""), metric)


def _title(ax: Any, text: str) -> None:
    """``text`` as the plot's only title (Optuna puts its own on the left), wrapped to fit."""
    ax.set_title("", loc="left")
    ax.set_title("\n".join(textwrap.wrap(text, 64)), fontsize=11)


def _titled(name: str, ax: Any, study: Any) -> None:
    """Name the split and the metric where Optuna's titles and legends say "Objective Value";
    say how few trials the importances rest on."""
    import optuna

    what, metric = _what(study)
    done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    if name == "optimization_history":
        _title(ax, f"{what}: {metric} of each trial and the best so far")
        ax.set_ylabel(metric)
    elif name == "param_importances":
        caveat = ": too few for more than a rough guide" if done < FEW_TRIALS else ""
        _title(ax, f"{what}: parameter importances for {metric} ({done} finished "
                   f"trials{caveat})")
        ax.set_xlabel(f"importance for {metric}")
    elif name == "intermediate_values":
        _title(ax, f"{what}: {metric} after each epoch of each trial (what the pruner sees)")
        ax.set_ylabel(metric)
    legend = ax.get_legend()
    names = {"Objective Value": metric, "Best Value": f"best {metric} so far"}
    for text in legend.get_texts() if legend is not None else []:
        text.set_text(names.get(text.get_text(), text.get_text()))


def figures(study: Any) -> dict[str, Any]:
    """Optuna's optimisation history, parameter importances and intermediate values (the
    pruning picture) as matplotlib figures, titled with the study, split and metric; a plot
    that needs more finished trials than there are is left out."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as ovm

    out = {}
    plots = {"optimization_history": ovm.plot_optimization_history,
             "param_importances": ovm.plot_param_importances,
             "intermediate_values": ovm.plot_intermediate_values}
    for name, plot in plots.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna marks these experimental
            try:
                ax = plot(study)
            except (ValueError, RuntimeError):  # e.g. importances of fewer than 2 trials
                continue
        first = ax if hasattr(ax, "figure") else ax.flat[0]
        _titled(name, first, study)
        out[name] = first.figure
    return out


def write_plots(study: Any, directory: str | Path) -> list[Path]:
    """:func:`figures` as PNG files in ``directory``."""
    import matplotlib.pyplot as plt

    from thetanet.files import atomic_write_with

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figures(study).items():
        fig.set_size_inches(8, 5)
        fig.tight_layout()
        path = directory / f"{name}.png"
        atomic_write_with(path, lambda fh, fig=fig: fig.savefig(fh, format="png", dpi=100))
        plt.close(fig)
        written.append(path)
    return written


def unused_params(params: dict[str, Any]) -> list[str]:
    """Parameters drawn but not used: a feature's or a neighbours block's weight, normalize
    or word space while its ``use_…`` is False (TPE draws them anyway)."""
    off = [k.removeprefix("use_") for k, v in params.items() if k.startswith("use_") and not v]
    return sorted(k for k in params for name in off
                  if k in (f"weight_{name}", f"normalize_{name}", f"{name}_space"))


def write_plots_or_fail(study: Any, directory: str) -> list[Path]:
    try:
        return write_plots(study, directory)
    except ImportError as exc:
        raise CLIError(f"--plots needs matplotlib: pip install 'thetanet[plot]' ({exc})"
                       ) from exc


def print_summary(doc: dict[str, Any], as_json: bool) -> None:
    if "best_params" in doc:
        doc["best_params_unused"] = unused_params(doc["best_params"])
    if as_json:
        print(json.dumps(doc, indent=1, sort_keys=True, default=str))
        return
    states = ", ".join(f"{n} {k.lower()}" for k, n in doc["states"].items()) or "none"
    print(f"study {doc['study']}: {doc['trials']} trials ({states})")
    if "trials_run" in doc:
        print(f"this worker ran trial(s) {doc['trials_run']}")
    if "best_value" in doc:
        unused = unused_params(doc["best_params"])
        print(f"best: trial {doc['best_trial']}, val {doc['best_value']:.4f}")
        for k, v in doc["best_params"].items():
            if k not in unused:
                print(f"  {k} = {v}")
        if unused:
            print(f"  (drawn but unused, their block being off: {', '.join(unused)})")
    for path in doc.get("plots", []):
        print(f"wrote {path}")


def run_digits_search(args: argparse.Namespace, data: Any) -> int:
    """``thetanet digits --search``: pick the architecture on a val part of the training
    images (stratified 80/20, seeded); the test images stay out of the search."""
    from thetanet.data.digits import stratified_split
    from thetanet.search import SearchSpace, search_architecture
    from thetanet.utils import blas_threads

    tr, va = stratified_split(data.y_train, 0.2, seed=args.seed)
    space = SearchSpace(max_epochs=args.epochs or 20)
    name = args.study or f"digits-{data.name}"
    shown = search_progress(args, "val accuracy", f"search {name}: {args.trials} trial(s), "
                            "objective val accuracy; a line per trial")
    with blas_threads(args.threads or None), _quiet_optuna(args.verbose):
        try:
            result = _call(search_architecture, data.x_train[tr], data.y_train[tr],
                           data.x_train[va], data.y_train[va], space=space,
                           n_trials=args.trials, storage=args.storage,
                           study_name=name, seed=args.seed, **_hooks(args, shown))
        except ValueError as exc:
            raise CLIError(str(exc)) from exc
        finally:
            if shown is not None:
                shown.close()
    doc = {**result.summary, "trials_run": result.trials_run, "metric": "val accuracy"}
    if args.plots:
        study = _existing(args.storage, result.study_name)
        doc["plots"] = [str(p) for p in write_plots_or_fail(study, args.plots)]
    print_summary(doc, args.json)
    return 0
