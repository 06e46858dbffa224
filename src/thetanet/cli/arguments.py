"""Checks of command-line values, done before any work starts.

A bad value is a usage error: :class:`~thetanet.cli.CLIError` (one line, exit status 2) naming
the option and what it must be — never a traceback, never after minutes of training. Paths are
checked for what the command will do with them: an input must be a file, an output must not
be a directory, a directory to write (a model, checkpoints, plots) must not be a file, and a
model directory to replace must hold a model.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any

from thetanet.cli import CLIError
from thetanet.compounds.settings import MAX_HIDDEN
from thetanet.compounds.storage import DOC_NAME, MAX_LOGIT_ADJUSTMENT

__all__ = ["MAX_HIDDEN", "check_digits_args", "check_evaluate_args", "check_predict_args",
           "check_score_args", "check_train_args", "input_file", "number", "output_dir",
           "output_file", "whole"]


def number(option: str, value: float | None, *, low: float | None = None,
           high: float | None = None, low_open: bool = False, high_open: bool = False) -> None:
    """``value`` (if given) is finite and within the bounds (open bounds excluded)."""
    if value is None:
        return
    ok = math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '≥'} {low:g}"
        hi = "" if high is None else f"{'<' if high_open else '≤'} {high:g}"
        bounds = " and ".join(b for b in (lo, hi) if b)
        raise CLIError(f"{option} must be a finite number{' ' + bounds if bounds else ''}, "
                       f"got {value!r}")


def whole(option: str, value: int | None, least: int) -> None:
    """``value`` (if given) is an integer ≥ ``least``."""
    if value is not None and value < least:
        raise CLIError(f"{option} must be an integer ≥ {least}, got {value}")


def input_file(option: str, path: str | None) -> None:
    """An input: ``-`` (stdin) or an existing file (not a directory)."""
    if path is None or path == "-":
        return
    if not os.path.exists(path):
        raise CLIError(f"{option} {path}: no such file")
    if os.path.isdir(path):
        raise CLIError(f"{option} {path}: is a directory, not a file")


def output_file(option: str, path: str | None) -> None:
    """An output file: ``-`` (stdout), or a path that is no directory, in a directory."""
    if path is None or path == "-":
        return
    if os.path.isdir(path):
        raise CLIError(f"{option} {path}: is a directory, not a file")
    parent = Path(path).parent
    if not parent.is_dir():
        raise CLIError(f"{option} {path}: the folder {parent} does not exist")


def output_dir(option: str, path: str | os.PathLike[str] | None, *,
               model: bool = False) -> None:
    """A directory to write into: it may not exist yet, but must not be a file (nor lie under
    one). ``model``: it will be replaced by a noun-compound model, so an existing non-empty
    directory must hold one."""
    if path is None:
        return
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists() or q.is_symlink():
            if not q.is_dir():
                what = "exists and is not a directory" if q == p else f"lies under the file {q}"
                raise CLIError(f"{option} {p}: {what}")
            break
    if model and p.is_dir() and not (p / DOC_NAME).exists() and any(p.iterdir()):
        raise CLIError(f"{option} {p}: exists and is not a noun-compound model (it has no "
                       f"{DOC_NAME}); not replacing it")


def check_train_args(args: argparse.Namespace, splits: list[str]) -> None:
    """Every value of ``nc train``, before data is read or anything trained."""
    number("--lr", args.lr, low=0, low_open=True)
    number("--l2", args.l2, low=0)
    number("--dropout", args.dropout, low=0, high=1, high_open=True)
    number("--input-dropout", args.input_dropout, low=0, high=1, high_open=True)
    number("--logit-adjustment", args.logit_adjustment, low=-MAX_LOGIT_ADJUSTMENT,
           high=MAX_LOGIT_ADJUSTMENT)
    whole("--patience", args.patience, 0)
    for option in ("batch_size", "max_epochs", "ensemble"):
        whole(f"--{option.replace('_', '-')}", getattr(args, option), 1)
    whole("--seed", args.seed, 0)
    whole("--threads", args.threads, 0)
    if args.hidden and max(args.hidden) > MAX_HIDDEN:
        raise CLIError(f"--hidden sizes must be at most {MAX_HIDDEN:,}, got {args.hidden}")
    if args.resume and not args.checkpoint:
        raise CLIError("--resume needs --checkpoint DIR (where the interrupted run wrote them)")
    for option in ("checkpoint", "plots", "cache_dir"):
        output_dir(f"--{option.replace('_', '-')}", getattr(args, option))
    for split in splits:
        out = (Path(args.out) / split if (args.out and args.all_splits)
               else Path(args.out or f"models/nc-{split}"))
        output_dir("--out", out, model=True)


def check_predict_args(args: argparse.Namespace) -> None:
    input_file("--input", args.input)
    output_file("--output", args.output)
    output_dir("--cache-dir", args.cache_dir)


def check_evaluate_args(args: argparse.Namespace) -> None:
    input_file("--input", args.input)
    output_dir("--cache-dir", args.cache_dir)


def check_score_args(args: argparse.Namespace) -> None:
    input_file("--gold", args.gold)
    input_file("--pred", args.pred)


def check_digits_args(args: Any) -> None:
    """The paths of ``thetanet digits`` (its numbers are checked where it parses them)."""
    output_dir("--save-model", args.save_model)
    output_dir("--plots", args.plots)
