"""The model format: JSON architecture + ``.npz`` weights, never pickle.

A saved model is a directory::

    model/
      config.json          format + version, thetanet version, architecture, compile settings,
                           metadata, and the name, shape, dtype and SHA-256 of every weight array
      weights-<hash>.npz   the arrays (plain numeric ``.npy`` members, uncompressed)

Writes are atomic and crash-safe (:mod:`thetanet.files`): the new weights file gets a fresh
name, then ``config.json`` is replaced in one ``os.replace``; old weight files are removed only
afterwards. A reader sees either the old model or the new one, never a mix. Writers to the same
directory are serialised by :func:`~thetanet.files.locked_dir`, so two processes saving to one
place cannot delete each other's weights.

Loading never executes code: ``.npz`` members are parsed by :func:`~thetanet.files.load_arrays`,
sizes are checked against the config before anything is allocated, every array's checksum and
the document's own are verified, and every problem raises :class:`ModelFileError` naming the
offending file. :func:`read_model` returns the validated ``(config, weights)``;
:func:`thetanet.model.rebuild` / :func:`thetanet.model.load_model` turn them into a network.
The same "bundle" (a JSON document + one ``.npz``, checksummed) stores training checkpoints
(:mod:`thetanet.checkpoint`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from thetanet._version import __version__
from thetanet.files import (
    ModelFileError,
    NoChecksumWarning,
    atomic_write_text,
    load_arrays,
    locked_dir,
    read_json,
    save_arrays,
)

__all__ = ["CONFIG_NAME", "FORMAT", "FORMAT_VERSION", "ModelFileError", "array_sha256",
           "check_header",
           "check_model_config", "doc_digest", "read_bundle_arrays", "read_config",
           "read_model", "save_model", "write_bundle"]

FORMAT = "thetanet-model"
#: 1: weights checksummed; 2: also the document itself (``sha256``). Both are read.
FORMAT_VERSION = 2
CONFIG_NAME = "config.json"
_WEIGHTS_FILE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,200}\.npz")


def array_sha256(arr: np.ndarray) -> str:
    """SHA-256 of an array's bytes in C order (what a bundle stores per array)."""
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def doc_digest(doc: Mapping[str, Any]) -> str:
    """SHA-256 of a JSON document's canonical form, without its own ``sha256`` entry."""
    body = {k: v for k, v in doc.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()



def write_bundle(directory: Path, json_name: str, doc: dict[str, Any],
                 arrays: Mapping[str, np.ndarray], prefix: str, *,
                 file_key: str = "arrays_file", specs_key: str = "arrays",
                 names: list[str] | None = None) -> str:
    """Atomically publish ``arrays`` + ``doc`` in ``directory`` (the caller holds its lock).

    The arrays go to ``<prefix>-<content hash>.npz``; ``doc`` gains ``file_key`` (that name),
    ``specs_key`` (key, shape, dtype, SHA-256 and optional ``names`` of each array) and
    ``sha256`` (:func:`doc_digest`, so an edited or corrupted document is refused too) and
    replaces ``json_name`` in one rename; older ``<prefix>-*.npz`` files (and temp files left
    by a writer that was killed: the lock says none is running) are removed only afterwards.
    Returns the arrays file name.
    """
    specs: list[dict[str, Any]] = [
        {"key": k, "shape": list(a.shape), "dtype": a.dtype.name, "sha256": array_sha256(a)}
        for k, a in arrays.items()]
    if names is not None:
        for spec, name in zip(specs, names):
            spec["name"] = name
    digest = hashlib.sha256("".join(s["key"] + s["sha256"] for s in specs).encode()
                            ).hexdigest()[:16]
    fname = f"{prefix}-{digest}.npz"
    save_arrays(directory / fname, arrays)
    doc = json.loads(json.dumps({**doc, file_key: fname, specs_key: specs}))  # as read back
    doc["sha256"] = doc_digest(doc)
    atomic_write_text(directory / json_name, json.dumps(doc, indent=1, sort_keys=True))
    stale = [*directory.glob(f"{prefix}-*.npz"), *directory.glob(f".{prefix}-*.npz.*.tmp"),
             *directory.glob(f".{json_name}.*.tmp")]  # temp files of writers killed mid-way
    for old in stale:
        if old.name != fname:
            try:
                old.unlink()
            except FileNotFoundError:
                pass
    return fname


def read_bundle_arrays(directory: Path, json_path: Path, doc: dict[str, Any],
                       file_key: str = "arrays_file", specs_key: str = "arrays"
                       ) -> dict[str, np.ndarray]:
    """Load and verify the arrays a bundle document lists (shapes, dtypes, SHA-256)."""
    fname = doc.get(file_key)
    if not isinstance(fname, str) or not _WEIGHTS_FILE_RE.fullmatch(fname) or ".." in fname:
        raise ModelFileError(f"{json_path}: invalid {file_key} {fname!r}")
    specs = doc.get(specs_key)
    if not isinstance(specs, list):
        raise ModelFileError(f"{json_path}: {specs_key!r} must be a list")
    expected: dict[str, tuple[tuple[int, ...], str]] = {}
    for spec in specs:
        ok = (isinstance(spec, dict) and isinstance(spec.get("key"), str)
              and isinstance(spec.get("shape"), list)
              and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40
                      for d in spec["shape"])
              and isinstance(spec.get("dtype"), str) and isinstance(spec.get("sha256"), str))
        if not ok:
            raise ModelFileError(f"{json_path}: malformed array entry {spec!r:.200}")
        if spec["key"] in expected:
            raise ModelFileError(f"{json_path}: array {spec['key']!r} listed twice")
        expected[spec["key"]] = (tuple(spec["shape"]), spec["dtype"])
    arrays = load_arrays(directory / fname, expected)
    for spec in specs:
        if array_sha256(arrays[spec["key"]]) != spec["sha256"]:
            label = spec.get("name") or spec["key"]
            raise ModelFileError(f"{directory / fname}: checksum mismatch for {label}: the "
                                 "file is corrupt or was modified")
    return arrays


# --------------------------------------------------------------------------------------------
# Models


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

def save_model(model: Any, path: str | os.PathLike[str],
               metadata: dict[str, Any] | None = None) -> Path:
    """Save ``model`` (a built Sequential) into the directory ``path``, atomically.

    Only the model's public protocol is used: ``built``, ``get_weights()``, ``weight_names()``,
    ``get_config()`` and ``get_compile_config()``.

    Concurrent saves to one directory are serialised (see :func:`locked_dir`); the last one
    wins, whole.
    """
    if not model.built:
        raise ValueError("the model is not built yet: call build(input_dim) or fit first")
    path = Path(path)
    weights = model.get_weights()
    names = model.weight_names()
    arrays = {f"w{i:03d}": w for i, w in enumerate(weights)}
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "thetanet_version": __version__,
        "model": model.get_config(),
        "compile": model.get_compile_config(),
        "metadata": metadata or {},
    }
    json.dumps(config)  # fail early (before touching the directory) on unserialisable metadata
    with locked_dir(path):
        write_bundle(path, CONFIG_NAME, config, arrays, "weights", file_key="weights_file",
                     specs_key="weights", names=names)
    return path


def check_header(doc: Any, source: Path, fmt: str, version: int, what: str,
                 digest_since: int = 1) -> dict[str, Any]:
    """Validate ``format``/``format_version`` of a parsed JSON document and its checksum.

    The document checksum is required from format ``digest_since`` on, checked when present
    (so a checksummed document relabelled as an older format is refused). An older document
    without one is accepted with an :class:`~thetanet.files.NoChecksumWarning`: what such a
    file guarantees is only what its format had — checksummed arrays, a validated structure.
    """
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise ModelFileError(f"{source}: not a thetanet {what}")
    v = doc.get("format_version")
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ModelFileError(f"{source}: invalid format_version {v!r}")
    if v > version:
        raise ModelFileError(f"{source}: written in {what} format {v} by thetanet "
                             f"{doc.get('thetanet_version')}; this thetanet reads format "
                             f"{version} — upgrade thetanet")
    if "sha256" in doc or v >= digest_since:
        if doc.get("sha256") != doc_digest(doc):
            raise ModelFileError(f"{source}: checksum mismatch for the {what} document: the "
                                 "file is corrupt or was edited")
    else:  # an older format, written before documents had a checksum: NoChecksumWarning
        warnings.warn(NoChecksumWarning(
            f"{source}: {what} format {v} has no checksum of its own (the files it lists are "
            "still checked): an edit of it cannot be detected; save it again to add one"),
            stacklevel=3)
    return doc


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed and validated ``config.json`` of a saved model directory."""
    path = Path(path)
    cfile = path / CONFIG_NAME if path.is_dir() else path
    if not cfile.exists():
        raise ModelFileError(f"{cfile}: no saved model here (missing {CONFIG_NAME})")
    return check_header(read_json(cfile), cfile, FORMAT, FORMAT_VERSION, "model",
                        digest_since=2)


#: Config entries that size parameters: bounded by the stored weight count (see below).
_SIZE_KEYS = ("units", "pieces", "hinges", "input_dim", "output_dim", "filters", "kernel_size",
              "input_shape")


def _sizes_in(cfg: dict[str, Any], source: Path) -> Iterator[int]:
    """The size-like entries of a layer config and of its activation's config (the entries of
    a list, such as a kernel size, one by one). Each must be an integer (or absent/null): a
    size written as a string or a float is refused here, before anything is built from it."""
    inner = cfg.get("layer")  # a wrapped layer (Bidirectional)
    inner = inner.get("config") if isinstance(inner, dict) else None
    for c in (cfg, cfg.get("activation"), inner):
        if isinstance(c, dict):
            for k in _SIZE_KEYS:
                v = c.get(k)
                for e in (v if isinstance(v, list) else [v]):
                    if e is None and not isinstance(v, list):
                        continue
                    if isinstance(e, bool) or not isinstance(e, int):
                        raise ModelFileError(f"{source}: {k} must be an integer, got "
                                             f"{e!r:.40}")
                    yield e


def _kernel_size(cfg: dict[str, Any]) -> int:
    """A lower bound on the kernel a layer config builds: the product of its units, pieces,
    filters, kernel size and declared input width (``input_dim``, or the channels of an
    ``input_shape``), those it has (all checked to be integers by :func:`_sizes_in`)."""
    product = 1
    for k in ("units", "pieces", "filters", "kernel_size", "input_dim", "output_dim"):
        v = cfg.get(k)
        for e in (v if isinstance(v, list) else [v]):
            product *= abs(e) if isinstance(e, int) and e else 1
    shape = cfg.get("input_shape")
    if isinstance(shape, list) and shape and isinstance(shape[-1], int) and shape[-1]:
        product *= abs(shape[-1])
    return product


def check_model_config(model_cfg: Any, n_elements: int, source: Path) -> None:
    """Refuse configs that cannot match the stored weights before building (allocating) them.

    Every size in the layer configs that determines a parameter's size (units, pieces, hinges,
    filters, kernel size, input_dim, each axis of an input_shape) is bounded by the number of
    stored weight elements, so a tampered config cannot make the loader allocate gigabytes.
    """
    if not isinstance(model_cfg, dict) or not isinstance(model_cfg.get("layers"), list):
        raise ModelFileError(f"{source}: malformed model config")
    layers = model_cfg["layers"]
    if not layers or not all(isinstance(c, dict) and isinstance(c.get("class_name"), str)
                             and isinstance(c.get("config"), dict) for c in layers):
        raise ModelFileError(f"{source}: malformed layer list")
    limit = max(n_elements, 1)
    sizes = [v for c in layers for v in _sizes_in(c["config"], source)]
    sizes += list(_sizes_in({k: model_cfg.get(k) for k in ("input_dim", "input_shape")},
                            source))
    inputs = model_cfg.get("inputs", [])  # a graph's inputs (thetanet.graph.Model)
    if not isinstance(inputs, list) or not all(isinstance(c, dict) for c in inputs):
        raise ModelFileError(f"{source}: malformed list of graph inputs")
    for c in inputs:
        sizes += list(_sizes_in({"input_shape": c.get("shape")}, source))
    if n_elements:
        if any(not abs(v) <= limit for v in sizes):
            raise ModelFileError(f"{source}: layer sizes in the config do not fit the "
                                 f"{n_elements} stored weight values")
        for c in layers:  # each size fits, but a kernel is their product
            if _kernel_size(c["config"]) > limit:
                raise ModelFileError(f"{source}: the kernel of layer {c['class_name']!r:.40} "
                                     f"would exceed the {n_elements} stored weight values")


def read_model(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[np.ndarray]]:
    """``(config, weights)`` of the model saved in directory ``path``, validated: header and
    document checksum, every weight's shape, dtype and SHA-256, and the layer sizes against
    the weights (:func:`check_model_config`). Never executes code from the files.

    A concurrent save to the same directory is tolerated (the read is retried against the new
    config). :func:`thetanet.model.rebuild` makes the network from the result.
    """
    path = Path(path)
    if not path.is_dir():
        raise ModelFileError(f"{path}: a saved model is a directory with {CONFIG_NAME}")
    for attempt in range(3):
        with locked_dir(path, shared=True):
            config = read_config(path)
            try:
                arrays = read_bundle_arrays(path, path / CONFIG_NAME, config, "weights_file",
                                            "weights")
                break
            except ModelFileError:
                # Unlocked platforms: a writer may have replaced config.json and removed the
                # old weights meanwhile; read again if so.
                if attempt == 2 or read_config(path).get("weights_file") == config.get(
                        "weights_file"):
                    raise
    weights = [arrays[s["key"]] for s in config["weights"]]
    for spec, w in zip(config["weights"], weights):  # NaN/inf would only show at predict time
        if w.dtype.kind == "f" and not np.all(np.isfinite(w)):
            raise ModelFileError(f"{path / CONFIG_NAME}: weight {spec.get('name') or spec['key']}"
                                 " holds NaN or infinite values")
    check_model_config(config.get("model"), sum(w.size for w in weights), path / CONFIG_NAME)
    return config, weights
