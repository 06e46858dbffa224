r"""Dropout (inverted): in training each unit is kept with probability 1 − rate and scaled by
1/(1 − rate), so nothing changes at inference. Backward multiplies by the same mask.

The mask comes from ``self.rng`` (a ``numpy.random.Generator`` the model seeds), never from
global state. One rate per layer: put a ``Dropout`` after each layer with its own rate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thetanet.blockmatrix import BlockMatrix, is_sparse
from thetanet.layers.base import Layer, register_layer


@register_layer
class Dropout(Layer):
    """Inverted dropout with probability ``rate`` of zeroing each unit (see the module)."""

    propagates_mask = True  # per step on sequences
    stochastic = True
    linear_backward = True  # grad ⊙ mask

    def __init__(self, rate: float, name: str | None = None) -> None:
        super().__init__(name)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.mask: np.ndarray | None = None
        self._bufs: tuple[np.ndarray, np.ndarray] | None = None
        self._structured = False  # the last training input was sparse / a BlockMatrix

    def forward(self, x: Any, training: bool = False) -> Any:
        if not training or self.rate == 0:
            self.mask = None
            return x
        if not isinstance(x, np.ndarray):  # a sparse or block input (the first layer)
            return self._forward_structured(x)
        self._structured = False
        keep = 1.0 - self.rate
        dt = np.float32 if x.dtype == np.float32 else np.float64
        bufs = self._bufs
        if (bufs is None or bufs[0].shape[0] < x.shape[0] or bufs[0].shape[1:] != x.shape[1:]
                or bufs[0].dtype != dt or bufs[1].dtype != x.dtype):
            bufs = self._bufs = (np.empty(x.shape, dt), np.empty(x.shape, x.dtype))
        m = x.shape[0]
        mask, out = bufs[0][:m], bufs[1][:m]
        # The same draws as ``rng.random(x.shape, dtype)``; mask = 1/keep where kept, else 0.
        self.rng.random(dtype=dt, out=mask)
        np.less(mask, keep, out=mask, casting="unsafe")
        mask *= 1.0 / keep
        self.mask = mask = mask.astype(x.dtype, copy=False)
        return np.multiply(x, mask, out=out)

    def _forward_structured(self, x: Any) -> Any:
        """Dropout of a CSR matrix (on its stored entries) or of a BlockMatrix (block by
        block). Only as an input layer: nothing below it learns, so no gradient flows back."""
        self.mask = None
        self._structured = True
        keep = 1.0 - self.rate

        def drop(b: Any) -> Any:
            if is_sparse(b):
                out = b.tocsr(copy=True)
                kept = self.rng.random(out.data.shape[0]) < keep
                out.data *= np.where(kept, 1.0 / keep, 0.0).astype(out.data.dtype)
                out.eliminate_zeros()
                return out
            b = np.asarray(b)
            kept = self.rng.random(b.shape) < keep
            # b·kept·(1/keep): the same values as b·where(kept, 1/keep, 0), a third of the time
            out = np.multiply(b, kept, dtype=b.dtype)
            out *= b.dtype.type(1.0 / keep)
            return out

        if isinstance(x, BlockMatrix):
            return BlockMatrix([drop(b) for b in x.blocks])
        if not is_sparse(x):
            raise TypeError(f"Dropout needs an ndarray, a sparse matrix or a BlockMatrix, "
                            f"got {type(x).__name__}")
        return drop(x)

    def backward(self, grad: np.ndarray, *, grad_is_preactivation: bool = False
                 ) -> np.ndarray | None:
        if self._structured and grad is not None:
            raise ValueError("Dropout of a sparse or block input passes no gradient back; put "
                             "it first, below no trainable layer")
        if self.mask is None:
            return grad
        grad *= self.mask
        return grad

    def get_config(self) -> dict[str, Any]:
        return {"rate": self.rate, "name": self.name}
