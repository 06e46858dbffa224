r"""MaxPool2D and AveragePool2D: summarise each (p_h × p_w) window of every channel.

For output pixel (p, q) of channel c the window is a[n, p·s_h + i, q·s_w + j, c] for the kernel
offsets (i, j) — the same geometry as :class:`~thetanet.layers.conv2d.Conv2D`, without weights.

- Max: a_out = max_(i,j) a_in. Backward routes δ to the argmax only (the first maximal entry
  of the window in row-major order on ties, as PyTorch does); every other input gets 0 from
  that window. Overlapping windows (stride < pool) add their contributions.
- Average: a_out = (1/|window|) Σ_(i,j) a_in; backward spreads δ/|window| over the window.

``padding="same"`` pads like Keras/TensorFlow (⌈H/s⌉ outputs, the odd pixel after): padded
entries never win a max (−∞) and are not counted in an average (|window| counts the real
inputs only, TensorFlow's rule; PyTorch's ``count_include_pad=False``).

Both loop in Python over the p_h·p_w window offsets only; each step is one vectorised operation
over all examples, pixels and channels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thetanet import conv_ops as ops
from thetanet.layers.base import Layer, Shape, register_layer
from thetanet.layers.weighted import check_budget


class _Pool2D(Layer):
    """Shared geometry, padding and buffers of the pooling layers."""

    _pad_value = 0.0
    linear_backward = True  # the routes / shares are fixed by the forward pass

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid",
                 name: str | None = None) -> None:
        super().__init__(name)
        kind = type(self).__name__
        self.pool_size = ops.pair(pool_size, f"{kind} pool_size")
        self.strides = self.pool_size if strides is None else ops.pair(strides, f"{kind} strides")
        self.padding = ops.check_padding(padding)
        self._bufs: dict[str, Any] = {}

    def build(self, input_shape: int | Shape, *, dtype: Any, rng: np.random.Generator
              ) -> Shape:
        h, w, c = ops.input_hwc(input_shape, type(self).__name__)
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        if ph > 2 * h or pw > 2 * w:  # 'same' would pad it: windows mostly of padding, slow
            raise ValueError(f"{type(self).__name__} pool_size {self.pool_size} exceeds "
                             f"twice the input's {h}×{w}")
        ho, pt, pb = ops.output_size(h, ph, sh, self.padding)
        wo, pl, pr = ops.output_size(w, pw, sw, self.padding)
        check_budget(ho * wo * c * ph * pw, f"{type(self).__name__} {self.name!r} (work per "
                     "example)")
        self._set_shapes((h, w, c), (ho, wo, c), dtype)
        self._pads = (pt, pb, pl, pr)
        # the windows tile the input exactly: every input gets exactly one window's gradient
        self._tiles = (sh, sw) == (ph, pw) and not any(self._pads) and h == ho * ph \
            and w == wo * pw
        self._bufs.clear()
        return (ho, wo, c)

    def _check_input(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"{type(self).__name__} expects inputs of shape (m, "
                             f"{', '.join(map(str, self.input_shape))}), got {x.shape}")
        return x

    def _buf(self, key: str, shape: tuple[int, ...], dtype: Any, fill: float | None = None
             ) -> np.ndarray:
        """A reused training buffer with room for ``shape`` (a view of its first rows)."""
        b = self._bufs.get(key)
        if b is None or b.shape[0] < shape[0] or b.shape[1:] != shape[1:] or b.dtype != dtype:
            b = np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)
            self._bufs[key] = b
        return b[:shape[0]]

    def _padded(self, x: np.ndarray, training: bool) -> np.ndarray:
        pt, pb, pl, pr = self._pads
        if not any(self._pads):
            return x
        h, w, c = self.input_shape
        shape = (x.shape[0], h + pt + pb, w + pl + pr, c)
        # the border keeps its fill: only the middle is ever written
        xp = self._buf("xp", shape, x.dtype, self._pad_value) if training else \
            np.full(shape, self._pad_value, x.dtype)
        xp[:, pt:pt + h, pl:pl + w] = x
        return xp

    def _views(self, xp: np.ndarray) -> list[np.ndarray]:
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        ho, wo, _ = self.output_shape
        return [ops.offset_view(xp, i, j, sh, sw, ho, wo) for i in range(ph) for j in range(pw)]

    def _reduce(self, x: Any, training: bool, combine: np.ufunc
                ) -> tuple[np.ndarray, np.ndarray]:
        """(padded input, output): ``combine`` (np.maximum, np.add) over the window offsets,
        one vectorised step per offset."""
        x = self._check_input(x)
        xp = self._padded(x, training)
        views = self._views(xp)
        ho, wo, c = self.output_shape
        shape = (x.shape[0], ho, wo, c)
        out = self._buf("out", shape, x.dtype) if training else np.empty(shape, x.dtype)
        if len(views) == 1:
            np.copyto(out, views[0])
        else:
            combine(views[0], views[1], out=out)
            for v in views[2:]:
                combine(out, v, out=out)
        return xp, out

    def _grad_target(self, m: int, dtype: Any) -> tuple[np.ndarray, list[np.ndarray]]:
        """The (padded) input-gradient buffer, zeroed unless the windows tile the input, and
        its per-offset views."""
        h, w, c = self.input_shape
        pt, pb, pl, pr = self._pads
        dxp = self._buf("dxp", (m, h + pt + pb, w + pl + pr, c), dtype)
        if not self._tiles:
            dxp.fill(0)
        return dxp, self._views(dxp)

    def _unpad(self, dxp: np.ndarray) -> np.ndarray:
        if not any(self._pads):
            return dxp
        h, w, c = self.input_shape
        pt, _, pl, _ = self._pads
        dx = self._buf("dx", (dxp.shape[0], h, w, c), dxp.dtype)
        np.copyto(dx, dxp[:, pt:pt + h, pl:pl + w])
        return dx

    def get_config(self) -> dict[str, Any]:
        return {"pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding, "name": self.name}


@register_layer
class MaxPool2D(_Pool2D):
    """Max over each window; backward routes δ to the window's (first) argmax.

    Args:
        pool_size: p or (p_h, p_w).
        strides: s or (s_h, s_w); None = pool_size (non-overlapping windows).
        padding: "valid" or "same" (Keras's rule; padding never wins the max).
    """

    _pad_value = -np.inf

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        xp, out = self._reduce(x, training, np.maximum)
        if training:
            self.xp, self.out = xp, out
        return out

    def backward(self, grad: np.ndarray, *, grad_is_preactivation: bool = False
                 ) -> np.ndarray | None:
        """δ_in = δ at the first input of each window that equals the window's max, else 0."""
        if not self.needs_input_grad:
            return None
        out = self.out
        m = out.shape[0]
        dxp, dviews = self._grad_target(m, grad.dtype)
        hit = self._buf("hit", out.shape, bool)
        taken = self._buf("taken", out.shape, bool)
        last = len(dviews) - 1
        for k, (v, dv) in enumerate(zip(self._views(self.xp), dviews)):
            np.equal(v, out, out=hit)
            if k:
                np.greater(hit, taken, out=hit)  # hit and not taken: the first max wins
            if k == 0:
                np.copyto(taken, hit)
            elif k < last:
                np.logical_or(taken, hit, out=taken)
            if self._tiles:
                np.multiply(grad, hit, out=dv)
            else:
                dv += grad * hit
        return self._unpad(dxp)


@register_layer
class AveragePool2D(_Pool2D):
    """Mean over each window (padding not counted); backward spreads δ/|window| evenly.

    Args:
        pool_size: p or (p_h, p_w).
        strides: s or (s_h, s_w); None = pool_size (non-overlapping windows).
        padding: "valid" or "same" (Keras's rule; padded entries are not averaged).
    """

    def build(self, input_shape: int | Shape, *, dtype: Any, rng: np.random.Generator
              ) -> Shape:
        out = super().build(input_shape, dtype=dtype, rng=rng)
        # 1/|window| per output pixel: the number of real (unpadded) inputs in each window
        h, w, _ = self.input_shape
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        ho, wo, _ = self.output_shape
        pt, _, pl, _ = self._pads
        rows = np.clip(np.arange(ho) * sh - pt + ph, 0, h) - np.clip(np.arange(ho) * sh - pt, 0, h)
        cols = np.clip(np.arange(wo) * sw - pl + pw, 0, w) - np.clip(np.arange(wo) * sw - pl, 0, w)
        self._inv_count = (1.0 / np.outer(rows, cols))[:, :, None].astype(self.dtype)
        self._uniform = bool(np.all(rows == ph) and np.all(cols == pw))
        return out

    def _scale(self, a: np.ndarray) -> np.ndarray:
        if self._uniform:
            return np.multiply(a, a.dtype.type(1.0 / (self.pool_size[0] * self.pool_size[1])),
                               out=a)
        return np.multiply(a, self._inv_count.astype(a.dtype, copy=False), out=a)

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        return self._scale(self._reduce(x, training, np.add)[1])

    def backward(self, grad: np.ndarray, *, grad_is_preactivation: bool = False
                 ) -> np.ndarray | None:
        """δ_in = Σ over the windows containing the input of δ_out/|window|."""
        if not self.needs_input_grad:
            return None
        m = grad.shape[0]
        share = self._buf("share", grad.shape, grad.dtype)
        np.copyto(share, grad)
        self._scale(share)
        dxp, dviews = self._grad_target(m, grad.dtype)
        for dv in dviews:
            if self._tiles:
                np.copyto(dv, share)
            else:
                dv += share
        return self._unpad(dxp)
