"""A strict reader of ``.safetensors`` files (the MiniLM weights): bounded, validated, NumPy.

The format: 8 bytes (little-endian) giving the header's length N, N bytes of JSON mapping each
tensor's name to its ``dtype``, ``shape`` and ``data_offsets`` [begin, end) in the data that
follows (plus an optional ``__metadata__``). :func:`read_tensors` checks all of it before a
byte of data is used — a header length beyond the file, offsets outside it or overlapping, a
size that does not match the shape, a tensor read whose dtype is not a float one (a table
relabelled ``I8`` or ``BOOL`` would load as garbage), NaN or infinite values — and every
problem is one :class:`~thetanet.files.ModelFileError` line naming the file. Nothing here
needs the ``safetensors`` package, and nothing is executed.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from thetanet.files import ModelFileError, open_regular

__all__ = ["FLOAT_DTYPES", "MAX_HEADER_BYTES", "read_tensors", "tensor_names"]

#: The dtypes accepted (name in the file → how its bytes are read).
FLOAT_DTYPES: dict[str, str] = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "F64": "<f8"}
#: Every dtype's item size, for checking the layout of tensors that are not read.
_ITEM_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
#: Largest JSON header accepted (MiniLM's is ~20 kB).
MAX_HEADER_BYTES = 16 * 2**20
#: Largest file accepted.
MAX_FILE_BYTES = 8 * 2**30


def _entries(header: Any, source: Path, data_size: int) -> dict[str, tuple[str, tuple[int, ...],
                                                                          int, int]]:
    """name → (dtype, shape, begin, end), each checked against the data's size."""
    if not isinstance(header, dict):
        raise ModelFileError(f"{source}: the safetensors header is not a JSON object")
    out = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        ok = isinstance(spec, dict) and isinstance(spec.get("shape"), list) and all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40
            for d in spec["shape"])
        offsets = spec.get("data_offsets") if isinstance(spec, dict) else None
        ok = ok and isinstance(offsets, list) and len(offsets) == 2 and all(
            isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        if not ok:
            raise ModelFileError(f"{source}: malformed safetensors entry {name!r:.80}")
        dtype = spec.get("dtype")
        if dtype not in _ITEM_SIZES:
            raise ModelFileError(f"{source}: tensor {name!r:.80} has unknown dtype "
                                 f"{dtype!r:.20}")
        begin, end = offsets
        shape = tuple(spec["shape"])
        need = math.prod(shape) * _ITEM_SIZES[dtype]
        if not 0 <= begin <= end <= data_size or end - begin != need:
            raise ModelFileError(f"{source}: tensor {name!r:.80} ({dtype} {list(shape)}) has "
                                 f"offsets {offsets} that do not fit its size ({need} bytes) "
                                 f"or the file ({data_size} bytes of data)")
        out[name] = (dtype, shape, begin, end)
    spans = sorted((b, e) for _, _, b, e in out.values() if e > b)
    if any(e1 > b2 for (_, e1), (b2, _) in zip(spans, spans[1:])):
        raise ModelFileError(f"{source}: tensors overlap in the safetensors data")
    return out


def _header(fh: Any, size: int, source: Path) -> tuple[int, Any]:
    """(N, the parsed header) of an open safetensors file of ``size`` bytes."""
    first = fh.read(8)
    if len(first) < 8:
        raise ModelFileError(f"{source}: too short for a safetensors file ({size} bytes)")
    n = int.from_bytes(first, "little")
    if n > min(MAX_HEADER_BYTES, size - 8):
        raise ModelFileError(f"{source}: safetensors header length {n} exceeds the file "
                             f"({size} bytes) or {MAX_HEADER_BYTES} bytes: truncated or not a "
                             "safetensors file")
    try:
        return n, json.loads(fh.read(n).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{source}: unreadable safetensors header ({exc})") from None


def read_tensors(path: str | os.PathLike[str], names: Iterable[str] | None = None
                 ) -> dict[str, np.ndarray]:
    """The tensors ``names`` (default: every float one) of a ``.safetensors`` file, as
    float32 (float64 ones as float64) native NumPy arrays, validated (see the module); a
    named tensor must have a float dtype."""
    source = Path(path)
    with open_regular(source, "safetensors", MAX_FILE_BYTES) as (fd, size), \
            os.fdopen(fd, "rb", closefd=False) as fh:
        n, header = _header(fh, size, source)
        entries = _entries(header, source, size - 8 - n)
        out = {}
        wanted = [k for k, e in entries.items() if e[0] in FLOAT_DTYPES] if names is None \
            else list(names)
        for name in wanted:
            if name not in entries:
                raise ModelFileError(f"{source}: no tensor {name!r}")
            dtype, shape, begin, end = entries[name]
            if dtype not in FLOAT_DTYPES:
                raise ModelFileError(f"{source}: tensor {name!r:.80} has dtype {dtype}; only "
                                     f"{', '.join(FLOAT_DTYPES)} are accepted")
            fh.seek(8 + n + begin)
            data = fh.read(end - begin)
            if len(data) != end - begin:
                raise ModelFileError(f"{source}: truncated while reading {name!r}")
            raw = np.frombuffer(data, dtype=FLOAT_DTYPES[dtype])
            out[name] = _as_float(raw, dtype).reshape(shape)
            if not np.all(np.isfinite(out[name])):
                raise ModelFileError(f"{source}: tensor {name!r} holds NaN or infinite values")
    return out


def tensor_names(path: str | os.PathLike[str]) -> list[str]:
    """The names of the tensors of a ``.safetensors`` file (its header validated)."""
    source = Path(path)
    with open_regular(source, "safetensors", MAX_FILE_BYTES) as (fd, size), \
            os.fdopen(fd, "rb", closefd=False) as fh:
        n, header = _header(fh, size, source)
        return list(_entries(header, source, size - 8 - n))


def _as_float(raw: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "BF16":  # the upper half of a float32
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float64 if dtype == "F64" else np.float32)
