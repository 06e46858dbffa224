"""Small helpers shared by the engine: one-hot targets, input validation, BLAS threads."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from thetanet.blockmatrix import BlockMatrix, is_sparse

__all__ = ["blas_threads", "check_array", "is_sparse", "one_hot", "to_categorical"]


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Limit BLAS threads to ``n`` inside the block (no-op for None or without threadpoolctl).

    Small matrix products, as in these networks, run faster on one thread, and far faster
    when other processes compete for the cores.
    """
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl is optional (it comes with scikit-learn)
        yield
        return
    with threadpool_limits(limits=int(n), user_api="blas"):
        yield


def one_hot(labels: Any, num_classes: int | None = None, dtype: Any = np.float32) -> np.ndarray:
    """Integer labels → rows e_{y}: the lecture's y ∈ {e_1, …, e_K} for K classes."""
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}")
    if y.size and (y.dtype.kind not in "iu" and not np.all(np.equal(np.mod(y, 1), 0))):
        raise ValueError("labels must be integers")
    y = y.astype(np.int64)
    k = int(y.max(initial=-1) + 1) if num_classes is None else int(num_classes)
    if y.size and (y.min() < 0 or y.max() >= k):
        bad = y[(y < 0) | (y >= k)][0]
        raise ValueError(f"label {bad} is out of range for {k} classes (0..{k - 1})")
    out = np.zeros((y.size, k), dtype=dtype)
    out[np.arange(y.size), y] = 1
    return out


to_categorical = one_hot


def check_array(x: Any, dtype: np.dtype, name: str = "x", flat: bool = True) -> Any:
    """A 2-D float array (or CSR / BlockMatrix) of ``dtype`` with only finite values; with
    ``flat=False`` a dense array may have more axes (examples × feature maps …)."""
    if isinstance(x, BlockMatrix):
        x = x.astype(dtype)
        if not x.all_finite():
            raise ValueError(f"{name} contains NaN or inf")
        return x
    if is_sparse(x):
        x = x.tocsr().astype(dtype, copy=False)
        if x.ndim != 2:
            raise ValueError(f"{name} must be 2-D")
        if not np.all(np.isfinite(x.data)):
            raise ValueError(f"{name} contains NaN or inf")
        return x
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} cannot be converted to an array: {exc}") from exc
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim != 2 and (flat or arr.ndim < 2):
        raise ValueError(f"{name} must be 2-D (examples × features), got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        where = f"column {bad[1]}" if arr.ndim == 2 else f"index {tuple(bad[1:].tolist())}"
        raise ValueError(f"{name} contains NaN or inf (first at row {bad[0]}, {where})")
    return arr


class MultiArray:
    """Several arrays with the same rows, indexed together: the inputs (or targets) of a model
    with several inputs (outputs). ``m[rows]`` and ``m[a:b]`` index every part; ``shape`` is
    ``(n,)``, so the fit loop batches it as it batches one array."""

    __slots__ = ("parts",)

    def __init__(self, parts: Any) -> None:
        self.parts = tuple(parts)
        n = {p.shape[0] for p in self.parts}
        if len(n) != 1:
            raise ValueError(f"the arrays of a multi-input (or output) model must have the "
                             f"same number of rows, got {sorted(n)}")

    @property
    def shape(self) -> tuple[int]:
        return (self.parts[0].shape[0],)

    def __len__(self) -> int:
        return self.parts[0].shape[0]

    def __getitem__(self, rows: Any) -> MultiArray:
        return MultiArray(p[rows] for p in self.parts)


def sum_is_finite(x: np.ndarray) -> bool:
    """True when every entry of the 2-D float array ``x`` is finite: then so is its sum (a NaN
    or inf makes it NaN or inf; a sum that overflows is settled by the exact check). The row
    sums are one BLAS matrix-vector product over the data, on all of BLAS's threads, without a
    temporary of the array's size."""
    with np.errstate(over="ignore", invalid="ignore"):
        rows = np.dot(x, np.ones(x.shape[1], x.dtype))
        return math.isfinite(float(np.add.reduce(rows)))
