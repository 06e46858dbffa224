"""The ``thetanet`` command: thin argument parsing over the library.

Each subcommand lives in its own module here and exposes ``register(subparsers)``, which adds
its parser and sets ``func`` (``args -> int``). Modules are discovered, so adding a command is
adding a file. Commands turn user-facing errors into :class:`CLIError`, which becomes one line
on stderr and exit status 2, without a traceback; warnings (an old model file without a checksum, a
model restored after an interrupted save, …) become one line each, ``warning: …``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings
from collections.abc import Sequence
from typing import Any, TextIO

from thetanet._version import __version__


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thetanet",
        description="The lecture's neural network on NumPy, and a noun-compound relation "
                    "classifier built on it.")
    parser.add_argument("--version", action="version", version=f"thetanet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():  # restores the default display afterwards
            warnings.showwarning = _one_line_warning
            return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"thetanet {args.command}: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt as exc:
        detail = f": {exc}" if str(exc) else ""
        print(f"thetanet {args.command}: interrupted{detail}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, file: TextIO | None = None, line: Any = None) -> None:
    """A warning as a user reads it: one line, no source file or code line."""
    print(f"warning: {message}", file=sys.stderr if file is None else file)


if __name__ == "__main__":
    sys.exit(main())
