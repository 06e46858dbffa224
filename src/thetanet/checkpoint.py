"""Training checkpoints: crash-safe snapshots that resume ``Sequential.fit`` bit-identically.

``model.fit(x, y, ..., checkpoint="ckpt")`` writes a checkpoint at the end of every epoch (and
every ``checkpoint_every`` batches, and when interrupted with Ctrl-C); ``resume=True``
continues from it. A checkpoint is a directory::

    ckpt/
      checkpoint.json     format + version, thetanet version, model + compile config, the
                          training state (epoch, batch position, RNG states, history,
                          callback states, divergence tracker) and the SHA-256 of every array
      state-<hash>.npz    weights, optimiser slots (momenta, Adam moments), the epoch's
                          permutation, best weights …: plain numeric arrays, never pickle

It is written like a model (:mod:`thetanet.io`): arrays to a fresh file, then
``checkpoint.json`` replaced in one ``os.replace``, under a directory lock. A process killed
at any moment (SIGKILL included) leaves the previous checkpoint or the new one, whole; since
the state holds everything the rest of the run depends on, resuming from either ends with
weights bit-identical to an uninterrupted run.

:func:`load_checkpoint` gives back a usable model (weights + optimiser state) and the state.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thetanet.io import (
    ModelFileError,
    _rebuild,
    check_header,
    check_model_config,
    locked_dir,
    read_bundle_arrays,
    read_json,
    write_bundle,
)

FORMAT = "thetanet-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.json"
_ARRAY_REF = "__ndarray__"


class CheckpointMismatchError(ValueError):
    """A checkpoint exists but belongs to another run (data, settings, model, callbacks)."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (weights and optimiser state restored) and the state."""

    path: Path
    model: Any
    state: dict[str, Any]
    thetanet_version: str | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def epoch(self) -> int:
        """Epochs completed before this checkpoint (the next epoch's 0-based index)."""
        return int(self.state["epoch"])

    @property
    def batch_offset(self) -> int:
        """Examples of the current epoch already trained on (0 at an epoch boundary)."""
        return int(self.state["offset"])


def checkpoint_exists(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a checkpoint (it may still be corrupt: loading checks that)."""
    return (Path(path) / CHECKPOINT_NAME).is_file()


# --------------------------------------------------------------------------------------------
# Splitting a nested state into JSON + arrays
# --------------------------------------------------------------------------------------------

def _split(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Replace every ndarray in ``obj`` by ``{"__ndarray__": key}``, collecting the arrays."""
    if isinstance(obj, np.ndarray):
        key = f"s{len(arrays):05d}"
        arrays[key] = np.ascontiguousarray(obj)
        return {_ARRAY_REF: key}
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"checkpoint state keys must be strings, got {k!r}")
            out[k] = _split(v, arrays)
        return out
    if isinstance(obj, (list, tuple)):
        return [_split(v, arrays) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")


def _join(obj: Any, arrays: Mapping[str, np.ndarray], source: Path) -> Any:
    """Inverse of :func:`_split`."""
    if isinstance(obj, dict):
        if set(obj) == {_ARRAY_REF}:
            key = obj[_ARRAY_REF]
            if not isinstance(key, str) or key not in arrays:
                raise ModelFileError(f"{source}: state refers to a missing array {key!r:.50}")
            return arrays[key]
        return {k: _join(v, arrays, source) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, arrays, source) for v in obj]
    return obj


# --------------------------------------------------------------------------------------------
# Writing and reading
# --------------------------------------------------------------------------------------------

def save_checkpoint(path: str | os.PathLike[str], model: Any, state: Mapping[str, Any]) -> Path:
    """Write ``model``'s weights and ``state`` (JSON-able, arrays anywhere) to ``path``.

    Atomic and locked; the previous checkpoint stays valid until the new one is complete.
    """
    from thetanet import __version__

    path = Path(path)
    arrays: dict[str, np.ndarray] = {f"w{i:03d}": w for i, w in enumerate(model.get_weights())}
    json_state = _split(dict(state), arrays)
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "thetanet_version": __version__,
        "model": model.get_config(),
        "compile": model.get_compile_config(),
        "n_weights": len(model.params),
        "state": json_state,
    }
    json.dumps(doc)  # unserialisable state fails here, before anything is written
    with locked_dir(path):
        write_bundle(path, CHECKPOINT_NAME, doc, arrays, "state")
    return path


def read_checkpoint(path: str | os.PathLike[str]
                    ) -> tuple[dict[str, Any], list[np.ndarray], dict[str, Any]]:
    """``(document, weights, state)`` of the checkpoint at ``path``, every checksum verified."""
    path = Path(path)
    cfile = path / CHECKPOINT_NAME
    if not cfile.is_file():
        raise ModelFileError(f"{cfile}: no checkpoint here (missing {CHECKPOINT_NAME})")
    for attempt in range(3):
        with locked_dir(path, shared=True):
            doc = check_header(read_json(cfile, "checkpoint"), cfile, FORMAT, FORMAT_VERSION,
                               "checkpoint")
            try:
                arrays = read_bundle_arrays(path, cfile, doc)
                break
            except ModelFileError:
                # Unlocked platforms: a concurrent writer may have replaced the checkpoint
                # meanwhile; read it again if so.
                again = read_json(cfile, "checkpoint")
                if attempt == 2 or not isinstance(again, dict) or again.get(
                        "arrays_file") == doc.get("arrays_file"):
                    raise
    n = doc.get("n_weights")
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= len(arrays):
        raise ModelFileError(f"{cfile}: invalid n_weights {n!r}")
    weights = []
    for i in range(n):
        if f"w{i:03d}" not in arrays:
            raise ModelFileError(f"{cfile}: weight array w{i:03d} is missing")
        weights.append(arrays[f"w{i:03d}"])
    state = doc.get("state")
    if not isinstance(state, dict):
        raise ModelFileError(f"{cfile}: malformed training state")
    return doc, weights, _join(state, arrays, cfile)


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """The model stored in a checkpoint (compiled, optimiser state restored) and the state."""
    path = Path(path)
    cfile = path / CHECKPOINT_NAME
    doc, weights, state = read_checkpoint(path)
    check_model_config(doc.get("model"), sum(w.size for w in weights), cfile)
    model = _rebuild(doc, weights, cfile, compile=True)
    if model.optimizer is not None and isinstance(state.get("optimizer"), dict):
        try:
            model.optimizer.set_state(state["optimizer"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{cfile}: bad optimiser state ({exc})") from exc
    return Checkpoint(path, model, state, doc.get("thetanet_version"), doc)


# --------------------------------------------------------------------------------------------
# Helpers for the training loop
# --------------------------------------------------------------------------------------------

def fingerprint(*arrays: Any) -> str:
    """SHA-256 over the contents, shapes and dtypes of dense or sparse arrays (None allowed).

    Stored in a checkpoint so that resuming on different data is refused.
    """
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none;")
            continue
        if hasattr(a, "blocks") and hasattr(a, "slices"):  # BlockMatrix: hash block by block
            h.update(f"blocks{a.shape};".encode())
            h.update(fingerprint(*a.blocks).encode())
            continue
        if hasattr(a, "tocsr") and hasattr(a, "nnz"):
            a = a.tocsr()
            parts = [a.data, a.indices, a.indptr]
            h.update(f"csr{a.shape};".encode())
        else:
            parts = [np.asarray(a)]
        for p in parts:
            p = np.ascontiguousarray(p)
            h.update(f"{p.dtype.str}{p.shape};".encode())
            h.update(memoryview(p).cast("B"))
    return h.hexdigest()


def rng_state(gen: np.random.Generator) -> dict[str, Any]:
    """The JSON-able state of a generator's bit generator."""
    return _plain(gen.bit_generator.state)


def set_rng_state(gen: np.random.Generator, state: Mapping[str, Any]) -> None:
    """Restore :func:`rng_state` (the bit generator kind must match)."""
    if state.get("bit_generator") != type(gen.bit_generator).__name__:
        raise ValueError(f"checkpointed RNG is {state.get('bit_generator')!r}, this one "
                         f"{type(gen.bit_generator).__name__}")
    gen.bit_generator.state = dict(state)


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return obj  # MT19937 keeps its key as an array: stored like any other array
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def describe_mismatch(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """The names of the entries that differ between two flat settings dicts."""
    return sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
