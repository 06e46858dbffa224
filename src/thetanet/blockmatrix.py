"""BlockMatrix: a wide input made of column blocks, some dense, some sparse (CSR).

Noun-compound features are a few hundred dense embedding columns beside tens of thousands of
sparse indicator columns. Stored as one CSR matrix, the dense block dominates the non-zeros and
runs through slow sparse kernels; kept apart, it goes through BLAS and the sparse block stays
sparse. ``Dense`` computes z = Σ_b X_b @ kernel[cols_b] and ∂J/∂kernel[cols_b] = X_bᵀ δ, which
equals the result for ``np.hstack`` of the blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def is_sparse(x: Any) -> bool:
    """True for SciPy sparse matrices/arrays (without importing SciPy)."""
    return hasattr(x, "tocsr") and hasattr(x, "nnz")


def used_columns(indices: np.ndarray, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct column ``indices`` of a sparse batch, and each entry's position
    among them: ``np.unique`` + ``np.searchsorted`` by a flag per column (no sort; ~15×
    faster for a batch's few thousand entries over tens of thousands of columns)."""
    if n_cols > 64 * len(indices):  # very wide and few entries: sorting them is cheaper
        rows = np.unique(indices).astype(np.int64)
        return rows, np.searchsorted(rows, indices)
    flags = np.zeros(n_cols, np.int64)
    flags[indices] = 1
    position = np.cumsum(flags)
    position -= 1
    return np.flatnonzero(flags), position[indices]


class TouchedRows(np.ndarray):
    """The sorted rows of ``out`` a :meth:`BlockMatrix.t_matmul` may have made non-zero (an
    int64 array), carrying what the product already had in compact form: ``dense`` (the
    dense blocks' row ranges, as slices) and ``sparse`` (the sparse blocks' rows and their
    values, i.e. ``out[sparse[0]] == sparse[1]``) — so lazy Adam need not gather them again.
    Valid until ``out`` is next written."""

    dense: list[slice]
    sparse: tuple[np.ndarray, np.ndarray] | None


def _touched(rows: list[np.ndarray], dense: list[slice],
             sparse: list[tuple[np.ndarray, np.ndarray]]) -> TouchedRows:
    out = (np.concatenate(rows) if rows else np.zeros(0, np.int64)).view(TouchedRows)
    out.dense = dense
    out.sparse = None
    if len(sparse) == 1:
        out.sparse = sparse[0]
    elif sparse:
        out.sparse = (np.concatenate([r for r, _ in sparse]),
                      np.concatenate([v for _, v in sparse]))
    return out


class BlockMatrix:
    """Columns ``[X_1 | X_2 | …]`` of equal row count; each X_b is an ndarray or CSR matrix."""

    def __init__(self, blocks: Sequence[Any]) -> None:
        if not blocks:
            raise ValueError("BlockMatrix needs at least one block")
        rows = {b.shape[0] for b in blocks}
        if len(rows) != 1:
            raise ValueError(f"blocks have different row counts: {sorted(rows)}")
        if any(len(b.shape) != 2 for b in blocks):
            raise ValueError("every block must be 2-D")
        # dense arrays or SciPy CSR matrices (SciPy is untyped: Any)
        self.blocks: list[Any] = [b.tocsr() if is_sparse(b) else np.asarray(b) for b in blocks]
        starts = np.cumsum([0] + [b.shape[1] for b in self.blocks])
        self.slices = [slice(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])]
        self.shape = (int(next(iter(rows))), int(starts[-1]))
        self.ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: Any) -> BlockMatrix:
        if isinstance(rows, tuple):
            raise IndexError("BlockMatrix supports row indexing only")
        return BlockMatrix([b[rows] for b in self.blocks])

    def astype(self, dtype: Any, copy: bool = False) -> BlockMatrix:
        return BlockMatrix([b.astype(dtype, copy=copy) for b in self.blocks])

    def __matmul__(self, w: np.ndarray) -> np.ndarray:
        out = None
        for b, sl in zip(self.blocks, self.slices):
            part = b @ w[sl]
            out = np.asarray(part) if out is None else out + part
        return out  # type: ignore[return-value]

    def t_matmul(self, delta: np.ndarray, out: np.ndarray,
                 state: dict[str, Any] | None = None) -> np.ndarray:
        """``out[...] = selfᵀ @ delta``, block by block.

        A sparse block's product only touches the rows of its columns that hold a non-zero in
        this batch. With ``state`` (a dict the caller keeps across calls with the same ``out``,
        and only while nothing else writes into ``out``) only the rows written last time are
        zeroed, instead of the whole block, and ``state["touched"]`` is set to the sorted rows
        of ``out`` this call may have made non-zero (the other rows are zero), a
        :class:`TouchedRows` that also carries the sparse blocks' rows in compact form.
        """
        touched, dense, sparse = [], [], []
        for k, (b, sl) in enumerate(zip(self.blocks, self.slices)):
            if not is_sparse(b):
                np.matmul(b.T, delta, out=out[sl])
                if state is not None:
                    touched.append(np.arange(sl.start, sl.stop))
                    dense.append(sl)
                continue
            view = out[sl]
            rows, cols = used_columns(b.indices, b.shape[1])
            key = f"rows{k}"
            prev = None if state is None else state.get(key)
            if prev is None or prev[0] is not out:
                view[...] = 0
            else:
                view[prev[1]] = 0
            values = None
            if rows.size:
                import scipy.sparse as sp

                compact = sp.csr_matrix((b.data, cols, b.indptr), shape=(b.shape[0], rows.size))
                # in out's dtype: the values lazy Adam reads equal out's rows exactly
                values = np.asarray(compact.T @ delta).astype(out.dtype, copy=False)
                view[rows] = values
            if state is not None:
                state[key] = (out, rows)
                at = rows + sl.start
                touched.append(at)
                if values is not None:
                    sparse.append((at, values))
        if state is not None:
            state["touched"] = _touched(touched, dense, sparse)
        return out

    def toarray(self) -> np.ndarray:
        return np.hstack([b.toarray() if is_sparse(b) else b for b in self.blocks])

    def all_finite(self) -> bool:
        return all(bool(np.all(np.isfinite(b.data if is_sparse(b) else b)))
                   for b in self.blocks)

    @classmethod
    def from_row_groups(cls, groups: Sequence[Sequence[Any]]) -> BlockMatrix:
        """:meth:`from_parts` of the parts of consecutive groups of rows, stacked: group g
        gives the same parts (same kinds and widths) for its rows."""
        import scipy.sparse as sp

        if not groups:
            raise ValueError("from_row_groups needs at least one group")
        if len(groups) == 1:
            return cls.from_parts(groups[0])
        return cls.from_parts([sp.vstack(col, format="csr") if is_sparse(col[0])
                               else np.vstack(col) for col in zip(*groups)])

    @classmethod
    def from_parts(cls, parts: Sequence[Any]) -> BlockMatrix:
        """Merge neighbouring sparse parts into one CSR block (fewer, bigger products)."""
        import scipy.sparse as sp

        merged: list[Any] = []
        for p in parts:
            if is_sparse(p) and merged and is_sparse(merged[-1]):
                merged[-1] = sp.hstack([merged[-1], p], format="csr")
            else:
                merged.append(p.tocsr() if is_sparse(p) else np.ascontiguousarray(p))
        return cls(merged)
