"""Checks of ``nc search`` (and ``nc train --from-study``) options, before any work starts.

A search can run for hours: a value it cannot use must stop it at once, in one line (exit
status 2), not after the last trial — ``--timeout`` a finite number > 0; ``--plots`` a
directory it can create (not an existing file); ``--storage`` a database that keeps the study
(not an in-memory or empty SQLite URL, where every trial would be lost) and, for a SQLite
file, one that can be written.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from thetanet.cli import CLIError
from thetanet.cli.arguments import output_dir

__all__ = ["check_search_args", "check_storage", "sqlite_file"]


def sqlite_file(url: str) -> str | None:
    """The database file of a SQLite storage URL (``""`` for an in-memory one), or None for
    another kind of database."""
    from thetanet.search import storage_url

    full = storage_url(url)
    if not full.startswith("sqlite"):
        return None
    _, _, rest = full.partition("://")
    path = rest[1:] if rest.startswith("/") else rest  # sqlite:///x → x, sqlite:////abs → /abs
    path = path.split("?", 1)[0]
    return "" if path in ("", ":memory:") or path.startswith("file::memory:") else path


def check_storage(url: str | None, *, writing: bool) -> None:
    """A storage URL that keeps the study; for a SQLite file that exists, readable (and
    writable when ``writing``), in a folder that exists."""
    if url is not None and not url.strip():
        raise CLIError("--storage must not be empty")
    db = sqlite_file(url or "")
    if db is None:
        return
    if db == "":
        raise CLIError(f"--storage {url}: an in-memory database keeps nothing; name a file "
                       "(sqlite:///study.db) or a server (postgresql://…)")
    path = Path(db)
    if url is None and writing:  # the default database's folder (user data dir) is ours
        path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise CLIError(f"--storage {url}: {path} is a directory, not a database file")
    if path.exists():
        if not os.access(path, os.R_OK) or (writing and not os.access(path, os.W_OK)):
            raise CLIError(f"--storage {url}: {path} is not "
                           f"{'writable' if writing else 'readable'}")
    elif writing and not path.parent.is_dir():
        raise CLIError(f"--storage {url}: the folder {path.parent} does not exist")
    elif writing and not os.access(path.parent, os.W_OK):
        raise CLIError(f"--storage {url}: cannot create {path} (the folder is not writable)")


def check_search_args(args: argparse.Namespace) -> None:
    """Every option of ``nc search`` that the work would only use at its end."""
    timeout = args.timeout
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise CLIError(f"--timeout must be a finite number of seconds > 0, got {timeout!r}")
    output_dir("--plots", args.plots)
    check_storage(args.storage, writing=not args.show)
