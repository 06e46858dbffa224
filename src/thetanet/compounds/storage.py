"""The noun-compound model directory, written crash-safe: JSON + npz, never pickle.

::

    nc-model/
      nc.json        format + version, labels, settings, fitted feature config, report, …
      member-0/      one thetanet model directory per ensemble member (thetanet.saving)
      member-1/ …

A save builds the whole new directory aside (``.NAME.XXXX``) and swaps it in under the parent
directory's lock with two renames: the old model moves to ``.NAME.old.XXXX/model``, the new one
takes its place. Readers take the lock shared, so they see the old model or the new one, whole.
A save killed between the two renames leaves no model at ``NAME``, only ``.NAME.old.*/model``:
the next load puts the newest such orphan back, the next save clears them.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from thetanet.files import ModelFileError, atomic_write_text, locked_dir, read_json
from thetanet.model import Sequential, load_model

__all__ = ["NC_FORMAT", "NC_FORMAT_VERSION", "read_model_dir", "write_model_dir"]

NC_FORMAT = "thetanet-nc"
NC_FORMAT_VERSION = 2  # 2: class_prior (logit adjustment); 1 still read
DOC_NAME = "nc.json"


def write_model_dir(path: str | os.PathLike[str], content: dict[str, Any],
                    members: Sequence[Sequential]) -> Path:
    """Write ``content`` (+ format, version, member names) and ``members`` to the directory
    ``path``: built aside, then swapped in."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    mask = os.umask(0o022)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700; the model should be readable
    try:
        names = [f"member-{i}" for i in range(len(members))]
        for name, member in zip(names, members):
            member.save(tmp / name)
        doc = {**content, "format": NC_FORMAT, "format_version": NC_FORMAT_VERSION,
               "members": names}
        atomic_write_text(tmp / DOC_NAME, json.dumps(doc, indent=1, sort_keys=True))
        with locked_dir(path.parent):
            _swap_in(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_model_dir(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[Sequential]]:
    """The checked ``nc.json`` document and the member networks of the model at ``path``."""
    path = Path(path)
    if not path.exists() and _orphans(path):
        _recover(path)  # a save was killed between its two renames
    with locked_dir(path.parent, shared=True):  # never between _swap_in's two renames
        doc_path = path / DOC_NAME
        try:
            doc = read_json(doc_path, "noun-compound model")
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ModelFileError(f"{doc_path}: no noun-compound model here") from exc
        if not isinstance(doc, dict) or doc.get("format") != NC_FORMAT:
            raise ModelFileError(f"{doc_path}: not a thetanet noun-compound model")
        if int(doc.get("format_version", 0)) > NC_FORMAT_VERSION:
            raise ModelFileError(f"{doc_path}: format {doc['format_version']} is newer than "
                                 f"this thetanet reads ({NC_FORMAT_VERSION}); upgrade")
        members = []
        for name in doc["members"]:
            if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
                raise ModelFileError(f"{doc_path}: invalid member name {name!r}")
            members.append(load_model(path / name))
    return doc, members


def _swap_in(tmp: Path, path: Path) -> None:
    """Replace directory ``path`` by ``tmp`` (the caller holds the parent's lock)."""
    if not path.exists():
        os.replace(tmp, path)
    else:
        if not (path / DOC_NAME).exists() and any(path.iterdir()):
            raise FileExistsError(f"{path} exists and is not a noun-compound model; not replacing")
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
        os.replace(path, old / "model")
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    # left by saves killed between the renames (we hold the lock: none is in progress)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.old.*"):
        shutil.rmtree(stale, ignore_errors=True)


def _orphans(path: Path) -> list[Path]:
    """Previous models that a killed save moved aside (``.NAME.old.*/model``), newest first."""
    found = [d / "model" for d in path.parent.glob(f".{glob.escape(path.name)}.old.*")
             if (d / "model" / DOC_NAME).is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def _recover(path: Path) -> None:
    """Put the newest orphaned model back at ``path`` (no new model reached it)."""
    with locked_dir(path.parent):
        orphans = _orphans(path)
        if path.exists() or not orphans:
            return  # another process got here first
        os.replace(orphans[0], path)
        warnings.warn(f"{path}: restored the previous model after an interrupted save",
                      stacklevel=4)
        for orphan in orphans:
            shutil.rmtree(orphan.parent, ignore_errors=True)
