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

It is written like a model (:mod:`thetanet.saving`): arrays to a fresh file, then
``checkpoint.json`` replaced in one ``os.replace``, under a directory lock. A process killed
at any moment (SIGKILL included) leaves the previous checkpoint or the new one, whole; since
the state holds everything the rest of the run depends on, resuming from either ends with
weights bit-identical to an uninterrupted run.

:func:`read_checkpoint` gives back the validated document, weights and state;
:func:`thetanet.model.load_checkpoint` (also ``thetanet.load_checkpoint``) a usable model
(weights + optimiser state) in a :class:`Checkpoint`. The training loop's use of them is in
:mod:`thetanet.training`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thetanet._version import __version__
from thetanet.blockmatrix import BlockMatrix, is_sparse
from thetanet.files import ModelFileError, locked_dir, read_json
from thetanet.saving import check_header, check_model_config, read_bundle_arrays, write_bundle
from thetanet.utils import MultiArray

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
    check_model_config(doc.get("model"), sum(w.size for w in weights), cfile)
    return doc, weights, _join(state, arrays, cfile)


# --------------------------------------------------------------------------------------------
# The training state of one fit call
# --------------------------------------------------------------------------------------------

@dataclass
class RunState:
    """Where one ``fit`` call stands: what a checkpoint stores besides the weights, the
    optimiser, RNG and callback states. ``settings`` (data fingerprints, batch size, shuffling,
    seed) must match for a resume; ``best_*`` is the divergence fall-back (the weights and
    optimiser state of the best epoch so far by ``monitor``)."""

    n: int
    settings: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    offset: int = 0  # examples of the current epoch done
    perm: np.ndarray | None = None  # the current epoch's order
    total: float = 0.0  # Σ batch loss × batch size over the epoch so far
    preds: np.ndarray | None = None  # a^(L) of the epoch so far (for training metrics)
    finished: bool = False
    monitor: str = "loss"
    best_value: float = math.inf
    best_epoch: int = -1
    best_weights: list[np.ndarray] = field(default_factory=list)
    best_opt: dict[str, Any] = field(default_factory=dict)


def copy_state(state: dict[str, Any]) -> dict[str, Any]:
    """A copy of an optimiser state (its lists of arrays copied too)."""
    return {k: ([a.copy() for a in v] if isinstance(v, list) else v) for k, v in state.items()}


def run_settings(x: Any, y: np.ndarray, val: tuple[Any, Any] | None, batch_size: int,
                 shuffle: bool, seed: Any) -> dict[str, Any]:
    """What a resumed run must share with the checkpointed one (data by SHA-256)."""
    return {"data": fingerprint(x, y),
            "validation_data": None if val is None else fingerprint(*val),
            "batch_size": batch_size, "shuffle": bool(shuffle),
            "seed": seed if seed is None or isinstance(seed, (int, str)) else
            int(seed) if isinstance(seed, np.integer) else type(seed).__name__}


def save_training_state(path: str | os.PathLike[str], run: RunState, model: Any,
                        rng: np.random.Generator, callbacks: list[Any]) -> Path:
    """Checkpoint ``model`` and the run: position, RNGs, callback states, best weights."""
    mid = run.offset > 0 and run.perm is not None
    state = {
        "settings": run.settings,
        "epoch": run.epoch, "offset": run.offset if mid else 0,
        "perm": run.perm if mid else None,
        "total": run.total if mid else 0.0,
        "preds": run.preds[:run.offset] if (mid and run.preds is not None) else None,
        "finished": run.finished,
        "optimizer": model.optimizer.get_state(),
        "rng": rng_state(rng),
        "layer_rngs": [rng_state(layer.rng) for layer in model.layers],
        "callbacks": [{"class": type(cb).__name__, "state": cb.get_state()} for cb in callbacks],
        "best": {"monitor": run.monitor, "value": run.best_value, "epoch": run.best_epoch,
                 "weights": run.best_weights, "optimizer": run.best_opt},
    }
    return save_checkpoint(path, model, state)


def resume_training_state(path: str | os.PathLike[str], run: RunState, model: Any,
                          rng: np.random.Generator, callbacks: list[Any]) -> None:
    """Continue ``run`` from the checkpoint at ``path``: weights, optimiser, RNGs, callbacks
    and position restored. Refused (:class:`CheckpointMismatchError`) if the checkpoint is
    for another architecture, optimiser, data or settings."""
    doc, weights, st = read_checkpoint(path)
    if not isinstance(st.get("settings"), dict):
        raise ModelFileError(f"{path}/checkpoint.json: malformed training state")
    now = json.loads(json.dumps({"model": model.get_config(),
                                 "compile": model.get_compile_config()}))
    saved = doc.get("model")
    saved_model: dict[str, Any] = saved if isinstance(saved, dict) else {}
    if (saved_model.get("layers") != now["model"]["layers"]
            or saved_model.get("dtype") != now["model"]["dtype"]):
        raise CheckpointMismatchError(
            f"checkpoint {path} was written for a different architecture; refusing to resume "
            "(remove that directory, or checkpoint this model into another one)")
    if doc.get("compile") != now["compile"]:
        raise CheckpointMismatchError(f"checkpoint {path} was written with a different "
                                      f"optimiser/loss ({doc.get('compile')}); refusing to "
                                      "resume")
    diff = describe_mismatch(st.get("settings", {}), run.settings)
    if diff:
        raise CheckpointMismatchError(f"checkpoint {path} was written for a different run "
                                      f"(differs in: {', '.join(diff)}); refusing to resume")
    try:
        _restore(path, st, weights, run, model, rng, callbacks)
    except CheckpointMismatchError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError,
            OverflowError) as exc:
        raise ModelFileError(f"{path}/checkpoint.json: malformed training state "
                             f"({type(exc).__name__}: {exc})") from exc
    epochs = getattr(run, "epochs", None)  # what this fit asks for
    if run.finished or (epochs is not None and run.epoch >= epochs and not run.offset):
        # resuming a run that ended trains nothing: say so, not silently
        warnings.warn(f"checkpoint {path} holds a finished run (it ended after epoch "
                      f"{run.epoch}): nothing more is trained, the model is as that run left "
                      "it; remove the directory (or checkpoint into another one) to train "
                      "afresh", ResumedFinishedWarning, stacklevel=3)


class ResumedFinishedWarning(UserWarning):
    """``fit(..., resume=True)`` found a checkpoint of a run that had already ended."""


def _restore(path: Any, st: dict[str, Any], weights: list[np.ndarray], run: RunState,
             model: Any, rng: np.random.Generator, callbacks: list[Any]) -> None:
    saved_cbs = st["callbacks"]
    if not isinstance(saved_cbs, list) or not all(
            isinstance(c, dict) and isinstance(c.get("class"), str) for c in saved_cbs):
        raise ValueError("the callback list is malformed")
    saved_names = [c["class"][:80] for c in saved_cbs]
    names = [type(cb).__name__ for cb in callbacks]
    if saved_names != names:
        # the History every fit has first is left out of the message, unless it differs
        cut = 1 if saved_names[:1] == names[:1] else 0
        raise CheckpointMismatchError(
            f"checkpoint {path} was written with callbacks {saved_names[cut:]}"[:400]
            + f", this fit has {names[cut:]}; refusing to resume")
    if len(st["layer_rngs"]) != len(model.layers):
        raise CheckpointMismatchError(f"checkpoint {path}: layer count differs")
    shapes = [p.shape for p in model.params]
    _check_shapes("weights", weights, shapes)
    _check_shapes("best weights", st["best"]["weights"], shapes)
    live = model.optimizer.get_state()
    _check_optimizer_state(st["optimizer"], live, shapes)
    _check_optimizer_state(st["best"]["optimizer"], live, shapes)
    model.set_weights(weights)
    model.optimizer.set_state(st["optimizer"])
    set_rng_state(rng, st["rng"])
    for layer, rs in zip(model.layers, st["layer_rngs"]):
        set_rng_state(layer.rng, rs)
    for cb, saved in zip(callbacks, saved_cbs):
        cb.set_state(saved["state"])
    for key in ("epoch", "offset"):
        if isinstance(st[key], bool) or not isinstance(st[key], int):
            raise ValueError(f"{key} must be an integer, got {st[key]!r:.40}")
    if not isinstance(st["finished"], bool):
        raise ValueError(f"finished must be true or false, got {st['finished']!r:.40}")
    run.epoch, run.offset = int(st["epoch"]), int(st["offset"])
    run.finished = st["finished"]
    epochs = getattr(run, "epochs", None)  # the fit's (a plain RunState has none)
    if epochs is not None and run.epoch > epochs:
        raise CheckpointMismatchError(f"checkpoint {path} is at epoch {run.epoch}, beyond the "
                                      f"{epochs} epochs of this fit; refusing to resume")
    model.stop_training = run.finished
    if not 0 <= run.offset <= run.n or not 0 <= run.epoch:
        raise ValueError(f"position epoch {run.epoch}, offset {run.offset} is impossible")
    if run.offset:
        run.perm = np.asarray(st["perm"], dtype=np.int64)
        if run.perm.shape != (run.n,) or not np.array_equal(np.sort(run.perm),
                                                            np.arange(run.n)):
            raise ValueError("the stored permutation is not one of the examples")
        run.total = float(st["total"])
        if st.get("preds") is not None:
            run.preds = np.empty((run.n, model.output_dim), model.dtype)
            run.preds[:run.offset] = st["preds"]
    best = st["best"]
    run.best_value, run.best_epoch = float(best["value"]), int(best["epoch"])
    run.best_weights = [np.array(w) for w in best["weights"]]
    run.best_opt = copy_state(best["optimizer"])


def _check_shapes(what: str, arrays: Any, shapes: list[tuple[int, ...]]) -> None:
    """``arrays`` must be float arrays with exactly the parameters' shapes."""
    if (not isinstance(arrays, list) or not all(isinstance(a, np.ndarray) and a.dtype.kind == "f"
                                                for a in arrays)
            or [a.shape for a in arrays] != shapes):
        raise ValueError(f"{what} do not match the model's parameters")


def _check_optimizer_state(state: Any, template: dict[str, Any],
                           shapes: list[tuple[int, ...]]) -> None:
    """A stored optimiser state has the live one's keys: a step count and slots (all empty,
    before the first step, or all one array per parameter)."""
    if not isinstance(state, dict) or set(state) != set(template):
        raise ValueError("optimiser state has the wrong entries")
    it = state["iterations"]
    if isinstance(it, bool) or not isinstance(it, int) or it < 0:
        raise ValueError(f"optimiser step count {it!r:.40} is invalid")
    slots = [k for k in template if k != "iterations"]
    filled = [k for k in slots if not (isinstance(state[k], list) and not state[k])]
    for k in filled:
        _check_shapes(f"optimiser slot {k!r}", state[k], shapes)
    if filled and len(filled) != len(slots):
        raise ValueError("optimiser slots are partly missing")


# --------------------------------------------------------------------------------------------
# Fingerprints and RNG states
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
        if isinstance(a, MultiArray):  # a multi-input model's inputs: part by part
            h.update(f"multi{len(a.parts)};".encode())
            h.update(fingerprint(*a.parts).encode())
            continue
        if isinstance(a, BlockMatrix):  # hash block by block
            h.update(f"blocks{a.shape};".encode())
            h.update(fingerprint(*a.blocks).encode())
            continue
        if is_sparse(a):
            a = a.tocsr()
            parts = [a.data, a.indices, a.indptr]
            h.update(f"csr{a.shape};".encode())
        else:
            parts = [np.asarray(a)]
        for p in parts:
            p = np.ascontiguousarray(p)
            h.update(f"{p.dtype.str}{p.shape};".encode())
            h.update(memoryview(p).cast("B"))  # type: ignore[arg-type]  # ndarray: a buffer
    return h.hexdigest()


def rng_state(gen: np.random.Generator) -> dict[str, Any]:
    """The JSON-able state of a generator's bit generator."""
    state: dict[str, Any] = _plain(gen.bit_generator.state)
    return state


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
