"""Safe model files: JSON architecture + ``.npz`` weights, never pickle.

A saved model is a directory::

    model/
      config.json          format + version, architecture, compile settings, metadata,
                           and the name, shape, dtype and SHA-256 of every weight array
      weights-<hash>.npz   the arrays, loaded with ``allow_pickle=False``

Writes are atomic and crash-safe: the new weights file gets a fresh name, then ``config.json``
is replaced in one ``os.replace``; old weight files are removed only afterwards. A reader sees
either the old model or the new one, never a mix. Loading verifies every checksum.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "thetanet-model"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"


class ModelFileError(ValueError):
    """A model file is missing, corrupt, tampered with, unsafe or from an unknown format."""


def _sha256(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory + ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_arrays(path: str | os.PathLike[str], arrays: dict[str, np.ndarray]) -> None:
    """Write plain numeric arrays to an ``.npz`` atomically (object arrays are refused)."""
    for k, a in arrays.items():
        if np.asarray(a).dtype == object:
            raise TypeError(f"array {k!r} has dtype object; only numeric arrays are saved")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def load_arrays(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` with ``allow_pickle=False``; refuse anything else."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {}
            for key in data.files:
                try:
                    out[key] = data[key]
                except ValueError as exc:
                    raise ModelFileError(
                        f"{path}: array {key!r} holds Python objects (pickled data); "
                        "thetanet never unpickles, refusing to load it") from exc
            return out
    except ModelFileError:
        raise
    except FileNotFoundError as exc:
        raise ModelFileError(f"{path}: weights file not found") from exc
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise ModelFileError(f"{path}: not a readable .npz weights file ({exc})") from exc


def save_model(model: Any, path: str | os.PathLike[str],
               metadata: dict[str, Any] | None = None) -> Path:
    """Save ``model`` (a built Sequential) into the directory ``path``."""
    from thetanet import __version__

    model._require_built()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    weights = model.get_weights()
    names = model.weight_names()
    arrays = {f"w{i:03d}": w for i, w in enumerate(weights)}
    digest = hashlib.sha256("".join(_sha256(w) for w in weights).encode()).hexdigest()[:16]
    wfile = f"weights-{digest}.npz"
    save_arrays(path / wfile, arrays)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "thetanet_version": __version__,
        "model": model.get_config(),
        "compile": model.get_compile_config(),
        "weights_file": wfile,
        "weights": [{"key": k, "name": n, "shape": list(w.shape), "dtype": w.dtype.name,
                     "sha256": _sha256(w)} for (k, w), n in zip(arrays.items(), names)],
        "metadata": metadata or {},
    }
    atomic_write_text(path / CONFIG_NAME, json.dumps(config, indent=1, sort_keys=True))
    for old in path.glob("weights-*.npz"):
        if old.name != wfile:
            try:
                old.unlink()
            except FileNotFoundError:
                pass
    return path


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed and validated ``config.json`` of a saved model directory."""
    path = Path(path)
    cfile = path / CONFIG_NAME if path.is_dir() else path
    try:
        config = json.loads(cfile.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelFileError(f"{cfile}: no saved model here (missing {CONFIG_NAME})") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{cfile}: corrupt model config ({exc})") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFileError(f"{cfile}: not a thetanet model file")
    version = config.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{cfile}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{cfile}: written in model format {version} by thetanet "
                             f"{config.get('thetanet_version')}; this thetanet reads format "
                             f"{FORMAT_VERSION} — upgrade thetanet")
    return config


def load_model(path: str | os.PathLike[str], compile: bool = True) -> Any:
    """Load a model saved by :func:`save_model`, verifying every weight's checksum."""
    from thetanet.model import Sequential

    path = Path(path)
    if not path.is_dir():
        raise ModelFileError(f"{path}: a saved model is a directory with {CONFIG_NAME}")
    config = read_config(path)
    wname = config.get("weights_file", "")
    if not isinstance(wname, str) or "/" in wname or "\\" in wname or not wname:
        raise ModelFileError(f"{path / CONFIG_NAME}: invalid weights_file {wname!r}")
    arrays = load_arrays(path / wname)
    specs = config.get("weights", [])
    weights = []
    for spec in specs:
        key = spec["key"]
        if key not in arrays:
            raise ModelFileError(f"{path / wname}: array {key!r} ({spec['name']}) is missing")
        arr = arrays[key]
        if list(arr.shape) != spec["shape"] or arr.dtype.name != spec["dtype"]:
            raise ModelFileError(f"{path / wname}: array {spec['name']} has shape "
                                 f"{arr.shape}/{arr.dtype}, expected {spec['shape']}/"
                                 f"{spec['dtype']}")
        if _sha256(arr) != spec["sha256"]:
            raise ModelFileError(f"{path / wname}: checksum mismatch for {spec['name']}: the "
                                 "file is corrupt or was modified")
        weights.append(arr)
    if len(arrays) != len(specs):
        raise ModelFileError(f"{path / wname}: holds {len(arrays)} arrays, config lists "
                             f"{len(specs)}")
    try:
        model = Sequential.from_config(config["model"])
        model.set_weights(weights)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path / CONFIG_NAME}: cannot rebuild the model ({exc})") from exc
    if compile and config.get("compile"):
        c = config["compile"]
        model.compile(optimizer=c["optimizer"], loss=c["loss"], metrics=c.get("metrics"))
    model.metadata = config.get("metadata", {})
    return model
