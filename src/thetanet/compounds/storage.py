"""The noun-compound model directory, written crash-safe: JSON + npz, never pickle.

::

    nc-model/
      nc.json        format + version, labels, settings, fitted feature config, report, …,
                     the fitted neighbours block if any (training words, pairs, relations),
                     the checksum of each member's config.json, and its own (``sha256``)
      member-0/      one thetanet model directory per ensemble member (thetanet.saving)
      member-1/ …

``nc.json`` is covered like the engine's ``config.json``: format 3 carries the SHA-256 of its
canonical form (:func:`thetanet.saving.doc_digest`), so any edit — swapped labels, a reversed
vocabulary, another member's files — is refused, and every entry is validated (types, bounds,
cross-references) before anything is built from it; each problem is one
:class:`~thetanet.files.ModelFileError` line. Formats 1 and 2 (thetanet ≤ 0.1, without a checksum of
their own) are still read, validated the same way, with an
:class:`~thetanet.files.NoChecksumWarning`: their members' weights and configs are
checksummed, but an edit of ``nc.json`` itself that keeps it well-formed cannot be detected.
Saving such a model again gives it its checksum. A checksum detects accidents (a damaged or
truncated file, a partial copy), not tampering: whoever edits the file can recompute it —
which is why every value is also validated on its own.

A save builds the whole new directory aside (``.NAME.XXXXXXXX``, locked and marked while it
is built) and swaps it in under the parent directory's lock with two renames: the old model
moves to ``.NAME.old.XXXXXXXX/model``, the new one takes its place. Readers take the lock
shared, so they see the old model or the new one, whole. A save killed between the two
renames leaves no model at ``NAME``, only ``.NAME.old.*/model``: the next load puts the newest
such orphan back. The next save removes what killed saves left: the ``.NAME.old.*`` folders
and the staging folders that carry the mark and whose lock is free (their writer is dead).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from thetanet.compounds.settings import MAX_LOGIT_ADJUSTMENT, NCSettings
from thetanet.files import (
    ModelFileError,
    atomic_write_text,
    error_naming,
    lock_is_free,
    locked_dir,
    read_json,
)
from thetanet.model import Sequential, rebuild
from thetanet.saving import CONFIG_NAME, check_header, doc_digest, read_config, read_model

__all__ = ["MAX_LOGIT_ADJUSTMENT", "NC_FORMAT", "NC_FORMAT_VERSION", "check_document",
           "read_model_dir", "write_model_dir"]

NC_FORMAT = "thetanet-nc"
#: 3: checksummed (``sha256``) and members pinned (``member_sha256``); 2: class_prior (logit
#: adjustment); 1. All three are read (1 and 2 without a checksum, see the module).
NC_FORMAT_VERSION = 3
DOC_NAME = "nc.json"
_MAX_LABELS = 10_000
#: Smallest relation frequency a model file may carry (training's add-one smoothing gives
#: at least 1/(compounds + relations), far above).
MIN_PRIOR = 1e-12
_MAX_MEMBERS = 1_000
_MEMBER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,100}")
_SHA_RE = re.compile(r"[0-9a-f]{64}")
_STAGING_MARK = ".thetanet-staging"


def write_model_dir(path: str | os.PathLike[str], content: dict[str, Any],
                    members: Sequence[Sequential]) -> Path:
    """Write ``content`` (+ format, version, member names and checksums, its own checksum)
    and ``members`` to the directory ``path``: built aside, then swapped in. An ``OSError``
    names ``path``, never the staging folder."""
    path = Path(path)
    json.dumps(content)  # unserialisable content fails before anything is written
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except OSError as exc:
        raise error_naming(exc, path) from None
    try:
        with locked_dir(tmp):  # held while building: a later save sees this one is alive
            (tmp / _STAGING_MARK).write_bytes(b"")
            mask = os.umask(0o022)
            os.umask(mask)
            os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700; the model should be readable
            names = [f"member-{i}" for i in range(len(members))]
            digests = []
            for name, member in zip(names, members):
                member.save(tmp / name)
                digests.append(read_config(tmp / name)["sha256"])
            doc = {**content, "format": NC_FORMAT, "format_version": NC_FORMAT_VERSION,
                   "members": names, "member_sha256": digests}
            doc = json.loads(json.dumps(doc))  # as it will be read back
            doc["sha256"] = doc_digest(doc)
            atomic_write_text(tmp / DOC_NAME, json.dumps(doc, indent=1, sort_keys=True))
            (tmp / _STAGING_MARK).unlink()
            with locked_dir(path.parent):
                _swap_in(tmp, path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise error_naming(exc, path) from None
        raise
    return path


def read_model_dir(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[Sequential]]:
    """The checked ``nc.json`` document and the member networks of the model at ``path``."""
    path = Path(path)
    if not path.exists() and _orphans(path):
        _recover(path)  # a save was killed between its two renames
    with locked_dir(path.parent, shared=True):  # never between _swap_in's two renames
        doc_path = path / DOC_NAME
        if not os.path.lexists(doc_path):
            raise ModelFileError(f"{doc_path}: no noun-compound model here")
        doc = read_json(doc_path, "noun-compound model")
        if not isinstance(doc, dict) or doc.get("format") != NC_FORMAT:
            raise _bad(doc_path, "not a thetanet noun-compound model")
        v = doc.get("format_version")
        if _is_int(v) and 1 <= v <= NC_FORMAT_VERSION:
            check_document(doc, doc_path)  # the most precise message first
        check_header(doc, doc_path, NC_FORMAT, NC_FORMAT_VERSION, "noun-compound model",
                     digest_since=3)
        members = []
        for i, name in enumerate(doc["members"]):
            with warnings.catch_warnings():  # members of a model without checksum: one
                warnings.simplefilter("ignore")  # warning (nc.json's) says it
                config, weights = read_model(path / name)
            pinned = doc.get("member_sha256")
            if pinned is not None and config.get("sha256") != pinned[i]:
                raise ModelFileError(f"{path / name}: not the member this model was saved "
                                     f"with (its checksum differs from {DOC_NAME}'s)")
            model = rebuild(config, weights, True, path / name / CONFIG_NAME)
            if model.output_dim != len(doc["labels"]):
                raise ModelFileError(f"{path / name}: {model.output_dim} outputs for "
                                     f"{len(doc['labels'])} labels")
            members.append(model)
    return doc, members


# --------------------------------------------------------------------------------------------
# Validation of nc.json
# --------------------------------------------------------------------------------------------

def _bad(source: Path, what: str) -> ModelFileError:
    return ModelFileError(f"{source}: {what}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(float(v)))


def _str_list(doc: dict[str, Any], key: str, source: Path, most: int) -> list[str]:
    v = doc.get(key)
    if (not isinstance(v, list) or not 1 <= len(v) <= most
            or not all(isinstance(s, str) and 0 < len(s) <= 200 for s in v)):
        raise _bad(source, f"{key!r} must be a list of 1 to {most} non-empty names")
    if len(set(v)) != len(v):
        raise _bad(source, f"{key!r} lists a name twice")
    return v


def check_document(doc: dict[str, Any], source: Path) -> None:
    """Validate an ``nc.json`` document (after its header): every entry's type and bounds,
    and their agreement (one prior per label, one checksum per member). Problems raise a
    one-line :class:`ModelFileError`."""
    labels = _str_list(doc, "labels", source, _MAX_LABELS)
    members = _str_list(doc, "members", source, _MAX_MEMBERS)
    for name in members:
        if not _MEMBER_RE.fullmatch(name) or ".." in name:
            raise _bad(source, f"invalid member name {name!r:.60}")
    pinned = doc.get("member_sha256")
    if doc["format_version"] >= 3 or pinned is not None:
        if (not isinstance(pinned, list) or len(pinned) != len(members)
                or not all(isinstance(h, str) and _SHA_RE.fullmatch(h) for h in pinned)):
            raise _bad(source, "'member_sha256' must hold one SHA-256 per member")
    for key in ("features", "settings"):
        if not isinstance(doc.get(key), dict):
            raise _bad(source, f"{key!r} must be an object")
    for key in ("report", "metadata", "neighbours"):
        if not isinstance(doc.get(key, {}), dict):
            raise _bad(source, f"{key!r} must be an object")
    epochs = doc.get("best_epochs", [])
    if (not isinstance(epochs, list) or len(epochs) > len(members)
            or not all(_is_int(e) and 0 <= e < 2**31 for e in epochs)):
        raise _bad(source, "'best_epochs' must hold at most one epoch (≥ 0) per member")
    prior = doc.get("class_prior")
    if prior is not None and (not isinstance(prior, list) or len(prior) != len(labels)
                              or not all(_is_number(p) and MIN_PRIOR <= p <= 1 for p in prior)
                              or not abs(math.fsum(prior) - 1) <= 1e-6):
        raise _bad(source, f"class_prior must hold one frequency in [{MIN_PRIOR:g}, 1] per "
                           "relation, summing to 1")
    check_settings(doc["settings"], source)


#: NCSettings field → (check, what it must be).
_SETTING_CHECKS: dict[str, tuple[Any, str]] = {
    "features": (lambda v: isinstance(v, list) and 0 < len(v) <= 100 and all(
        isinstance(s, str) and 0 < len(s) <= 1000 for s in v), "a list of feature specs"),
    "hidden": (lambda v: isinstance(v, list) and len(v) <= 100 and all(
        _is_int(h) and 1 <= h <= 2**31 for h in v), "a list of positive layer sizes"),
    "activation": (lambda v: isinstance(v, str) and 0 < len(v) <= 100, "a name"),
    "dropout": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "input_dropout": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "l2": (lambda v: _is_number(v) and v >= 0, "a finite number ≥ 0"),
    "learning_rate": (lambda v: _is_number(v) and v > 0, "a finite number > 0"),
    "batch_size": (lambda v: _is_int(v) and 1 <= v <= 2**31, "a positive integer"),
    "max_epochs": (lambda v: _is_int(v) and 1 <= v <= 2**31, "a positive integer"),
    "patience": (lambda v: _is_int(v) and 0 <= v <= 2**31, "an integer ≥ 0"),
    "seeds": (lambda v: isinstance(v, list) and 0 < len(v) <= _MAX_MEMBERS and all(
        _is_int(s) and 0 <= s < 2**63 for s in v), "a list of seeds (integers ≥ 0)"),
    "logit_adjustment": (lambda v: _is_number(v) and abs(v) <= MAX_LOGIT_ADJUSTMENT,
                         f"a number in [-{MAX_LOGIT_ADJUSTMENT:g}, "
                         f"{MAX_LOGIT_ADJUSTMENT:g}]"),
    # parsed and checked by NCSettings.validate (features.neighbours.NeighbourOptions)
    "neighbours": (lambda v: v is None or (isinstance(v, str) and len(v) <= 1000),
                   "null or a string of key=value options"),
}


def check_settings(settings: dict[str, Any], source: Path) -> None:
    """The saved :class:`NCSettings`: known fields only, each of the right type and range."""
    known = {f.name for f in dataclasses.fields(NCSettings)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise _bad(source, f"unknown setting(s) {', '.join(map(repr, unknown))[:100]}")
    for key, value in settings.items():
        check, what = _SETTING_CHECKS.get(key, (lambda v: True, ""))
        if not check(value):
            raise _bad(source, f"setting {key!r} must be {what}, got {value!r:.40}")


# --------------------------------------------------------------------------------------------
# Swapping in, and what killed saves leave
# --------------------------------------------------------------------------------------------

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
    for stale in _leftovers(path, "old."):
        shutil.rmtree(stale, ignore_errors=True)
    # staging folders of saves killed while building: marked, and nobody holds their lock
    for stale in _leftovers(path, ""):
        if (stale / _STAGING_MARK).is_file() and lock_is_free(stale):
            shutil.rmtree(stale, ignore_errors=True)


def _leftovers(path: Path, kind: str) -> list[Path]:
    """Folders ``.NAME.<kind>*`` beside ``path``; staging ones (``kind=""``) only with
    mkdtemp's 8-character names."""
    tail = r"[a-z0-9_]{8}" if not kind else r"[^/]+"
    pattern = re.compile(re.escape(f".{path.name}.{kind}") + tail)
    return [p for p in path.parent.glob(f".{glob.escape(path.name)}.{kind}*")
            if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]


def _orphans(path: Path) -> list[Path]:
    """Previous models that a killed save moved aside (``.NAME.old.*/model``), newest first."""
    found = [d / "model" for d in _leftovers(path, "old.")
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
