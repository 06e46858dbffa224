r"""Conv2D: a layer whose units share their weights across the image (channels-last, like Keras).

The lecture's z^(j+1) = Θ^(j) a^(j), applied at every position of the image with one small Θ:

    z[n, p, q, o] = Σ_{i, j, c} a[n, p·s_h + i, q·s_w + j, c] · Θ[i, j, c, o] + b[o]
    a^(j+1) = g(z)

i.e. z = Θ * a + b, a cross-correlation ("convolution" in deep learning) of the (padded) input
with the kernel Θ (k_h, k_w, C_in, C_out) — Keras's layout, kernel then bias.

==================  =====================================  ==================================
lecture             meaning                                code
==================  =====================================  ==================================
a^(j)               input feature maps (m, H, W, C_in)     ``x`` (zero-padded: ``xp``)
Θ^(j), bias unit    kernel (k_h, k_w, C_in, C_out), bias   ``kernel``, ``bias``
im2col(a)           one row per output pixel, one column   ``cols`` (m·H'·W', k_h·k_w·C_in)
                    per (i, j, c) of its window
z^(j+1)             im2col(a) Θ + b, one GEMM              ``z`` (m·H'·W', C_out)
a^(j+1) = g(z)      output feature maps (m, H', W', C_out) ``a``
δ^(j+1)             ∂J/∂z^(j+1)                            ``delta`` in ``backward``
==================  =====================================  ==================================

Backward, with δ = grad ⊙ g'(z) (or δ given directly, ``grad_is_preactivation``):

- ∂J/∂Θ = im2col(a)ᵀ δ (one GEMM; + λΘ with ``l2=λ``, the bias not regularised);
  ∂J/∂b = Σ over examples and pixels of δ.
- δ for the layer below, the lecture's (Θ^(j))ᵀ δ^(j+1) with shared weights:

      ∂J/∂a[n, y, x, c] = Σ_{p·s_h + i = y, q·s_w + j = x} Σ_o δ[n, p, q, o] Θ[i, j, c, o]

  every input pixel collects, from every window that saw it, δ of that window's output times
  the weight that joined them. That is the *full* correlation of δ (dilated by the stride)
  with the kernel flipped in both spatial axes, C_in and C_out swapped, i.e. col2im(δ Θᵀ):
  δ Θᵀ (one GEMM, (m·H'·W', C_out) × (C_out, k_h·k_w·C_in), in im2col's layout) gives every
  window's share, and col2im (:func:`thetanet.conv_ops.col2im_add`, the adjoint of im2col)
  adds the shifted pieces into place — no padded im2col of δ is built. Padding is then cut off
  again.

``padding="same"`` follows Keras/TensorFlow: ⌈H/s⌉ outputs and the padding split with the odd
pixel at the bottom / right (see :func:`thetanet.conv_ops.output_size`); PyTorch's symmetric
``padding=`` differs for even kernels (pad the input with ``F.pad`` to reproduce it).

Speed: no Python loop runs over pixels. The im2col layout is chosen per layer (the speed path
:func:`thetanet.conv_ops.use_transposed_columns`); the bias and an elementwise g run on long
rows (:func:`thetanet.conv_ops.wide_shape`: C_out is often only 6–32 wide); the buffers
(padded input, columns, z, a, input gradient) are allocated once for the largest batch and
reused; batches whose columns would exceed :data:`thetanet.conv_ops.COLS_BUDGET` are done in
chunks of examples.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thetanet import activations as _activations
from thetanet import conv_ops as ops
from thetanet.layers.base import Shape, register_layer
from thetanet.layers.weighted import WeightedLayer, check_budget, positive_int


@register_layer
class Conv2D(WeightedLayer):
    """2-D convolution over (m, H, W, C_in) inputs with an optional activation.

    Args:
        filters: C_out, the number of output channels (filters).
        kernel_size: k or (k_h, k_w).
        strides: s or (s_h, s_w).
        padding: "valid" (no padding) or "same" (⌈H/s⌉ × ⌈W/s⌉ outputs, Keras's split).
        activation: name, config or instance from :mod:`thetanet.activations` (None =
            identity); applied per pixel across the C_out channels.
        kernel_initializer, bias_initializer: see :mod:`thetanet.initializers`, called with
            the kernel's shape (k_h, k_w, C_in, C_out) (Keras's fans: k_h·k_w·C_in in,
            k_h·k_w·C_out out).
        use_bias: one bias per filter.
        l2: L2 penalty λ: adds (λ/2)‖kernel‖² to the (batch-mean) loss.
        input_shape: optional (H, W, C_in), checked against the data when built.
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 activation: Any = None, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", use_bias: bool = True, l2: float = 0.0,
                 input_shape: Any = None, name: str | None = None) -> None:
        super().__init__(name)
        self.filters = positive_int(filters, "Conv2D filters")
        self.kernel_size = ops.pair(kernel_size, "Conv2D kernel_size")
        self.strides = ops.pair(strides, "Conv2D strides")
        self.padding = ops.check_padding(padding)
        self.activation = _activations.get(activation)
        self._init_weights(kernel_initializer, bias_initializer, use_bias, l2, kernel_ndim=4)
        self.declared_input_shape = None if input_shape is None else \
            ops.input_hwc(input_shape, "Conv2D")
        self._train: dict[str, Any] = {}  # training buffers, reused across batches
        self._m = 0  # batch size of the last training forward
        self._cols_kept = False  # its im2col matrix is still in the buffer

    # -- shapes ------------------------------------------------------------------------------
    def build(self, input_shape: int | Shape, *, dtype: Any, rng: np.random.Generator
              ) -> Shape:
        h, w, c = ops.input_hwc(input_shape, "Conv2D")
        if self.declared_input_shape is not None and (h, w, c) != self.declared_input_shape:
            raise ValueError(f"Conv2D declared input_shape={self.declared_input_shape} but "
                             f"receives inputs of shape {(h, w, c)}")
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        ho, pt, pb = ops.output_size(h, kh, sh, self.padding)
        wo, pl, pr = ops.output_size(w, kw, sw, self.padding)
        check_budget(ho * wo * kh * kw * c, f"Conv2D {self.name!r} (im2col columns per "
                     "example)")
        self._set_shapes((h, w, c), (ho, wo, self.filters), dtype)
        self._pads = (pt, pb, pl, pr)
        self._transposed = ops.use_transposed_columns(c, kw, wo)
        self._create_weights((kh, kw, c, self.filters), self.filters, rng)
        self._train.clear()
        return (ho, wo, self.filters)

    # -- helpers -----------------------------------------------------------------------------
    def _geometry(self) -> tuple[int, ...]:
        """(kh, kw, sh, sw, ho, wo, K = kh·kw·C_in, columns per example = ho·wo·K)."""
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        ho, wo, _ = self.output_shape
        k = kh * kw * self.input_shape[2]
        return kh, kw, sh, sw, ho, wo, k, ho * wo * k

    def _check_input(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            dims = ", ".join(map(str, self.input_shape))
            raise ValueError(f"Conv2D expects inputs of shape (m, {dims}), got {x.shape}")
        return x

    def _pad(self, x: np.ndarray, buf: np.ndarray | None) -> np.ndarray:
        """x itself ("valid" or zero padding), else x copied into the middle of ``buf`` (whose
        border is zero and is never written)."""
        pt, pb, pl, pr = self._pads
        if not (pt or pb or pl or pr):
            return x
        h, w, c = self.input_shape
        if buf is None:
            buf = np.zeros((x.shape[0], h + pt + pb, w + pl + pr, c), self.dtype)
        buf[:, pt:pt + h, pl:pl + w] = x
        return buf

    def _cols(self, xp: np.ndarray, n0: int, n1: int, flat: np.ndarray) -> np.ndarray:
        """im2col of examples n0:n1 into the front of the flat buffer ``flat``: (P, K), or its
        transpose (K, P) on the speed path (P = (n1 − n0)·ho·wo)."""
        kh, kw, sh, sw, ho, wo, k, per = self._geometry()
        p = (n1 - n0) * ho * wo
        out = flat[:(n1 - n0) * per].reshape((k, p) if self._transposed else (p, k))
        return ops.im2col(ops.windows(xp[n0:n1], kh, kw, sh, sw, ho, wo), out, self._transposed)

    def _linear(self, x: np.ndarray, xp: np.ndarray, z: np.ndarray, flat: np.ndarray) -> bool:
        """z = im2col(a) Θ + b, chunk by chunk; True when the columns of the whole batch are
        still in ``flat`` (one chunk) for the backward pass."""
        kh, kw, sh, sw, ho, wo, k, per = self._geometry()
        kmat = self.kernel.reshape(k, self.filters)
        m = x.shape[0]
        for n0, n1 in ops.chunks(m, per):
            cols = self._cols(xp, n0, n1, flat)
            rows = z[n0 * ho * wo:n1 * ho * wo]
            np.matmul(cols.T if self._transposed else cols, kmat, out=rows)
        if self.use_bias:
            zw = self._wide(z)
            np.add(zw, np.tile(self.bias, zw.shape[1] // self.filters), out=zw)
        return ops.fits_one_chunk(m, per)

    def _wide(self, arr: np.ndarray) -> np.ndarray:
        """(P, C_out) seen as fewer, longer rows (speed path :func:`conv_ops.wide_shape`)."""
        return arr.reshape(ops.wide_shape(*arr.shape))

    def _activate(self, z: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        """a = g(z); an elementwise g without parameters runs on the long-row view."""
        act = self.activation
        if not (act.elementwise and not act.params):
            return act.f(z, out=out)
        return act.f(self._wide(z), out=None if out is None else self._wide(out)).reshape(z.shape)

    # -- propagation -------------------------------------------------------------------------
    def _buffers(self, m: int) -> dict[str, Any]:
        """Training buffers for batches of up to ``m`` examples (views of them for smaller
        ones); allocated again only when a larger batch or another dtype comes."""
        buf = self._train
        if buf.get("cap", 0) >= m and buf["dtype"] == self.dtype:
            return buf
        kh, kw, sh, sw, ho, wo, k, per = self._geometry()
        pt, pb, pl, pr = self._pads
        h, w, c = self.input_shape
        dt = self.dtype
        step = min(m, max(1, ops.COLS_BUDGET // per))
        buf.clear()
        buf.update(cap=m, dtype=dt, step=step, flat=np.empty(step * per, dt),
                   z=np.empty((m * ho * wo, self.filters), dt))
        buf["a"] = buf["z"] if self.activation.name == "identity" else np.empty_like(buf["z"])
        if pt or pb or pl or pr:
            buf["xp"] = np.zeros((m, h + pt + pb, w + pl + pr, c), dt)
        return buf

    def forward(self, x, training=False):
        x = self._check_input(x)
        m = x.shape[0]
        ho, wo, f = self.output_shape
        if not training:
            kh, kw, sh, sw, _, _, k, per = self._geometry()
            flat = np.empty(min(m, max(1, ops.COLS_BUDGET // per)) * per, self.dtype)
            z = np.empty((m * ho * wo, f), self.dtype)
            self._linear(x, self._pad(x, None), z, flat)
            a = self._activate(z, z if self.activation.elementwise else None)
            return a.reshape(m, ho, wo, f)
        buf = self._buffers(m)
        xp = self._pad(x, buf["xp"][:m] if "xp" in buf else None)
        z = buf["z"][:m * ho * wo]
        self._cols_kept = self._linear(x, xp, z, buf["flat"])
        a = buf["a"][:m * ho * wo]
        a = z if a is z else self._activate(z, a)
        self.xp, self._z2, self._a2, self._m = xp, z, a, m
        self.z = z.reshape(m, ho, wo, f)  # the contract's cached z (see Layer.output_activation)
        return a.reshape(m, ho, wo, f)

    def backward(self, grad, *, grad_is_preactivation=False):
        """grad = ∂J/∂a^(j+1) of shape (m, H', W', C_out) (or δ^(j+1) itself)."""
        m = self._m
        kh, kw, sh, sw, ho, wo, k, per = self._geometry()
        f = self.filters
        g = np.reshape(grad, (m * ho * wo, f))
        act = self.activation
        if grad_is_preactivation:
            delta = g
        elif act.elementwise and not act.params:
            delta = act.backward(self._wide(self._z2), self._wide(self._a2), self._wide(g))
            delta = delta.reshape(g.shape)
        else:
            delta = act.backward(self._z2, self._a2, g)
        buf = self._train
        dk = self.d_kernel.reshape(k, f)
        for n0, n1 in ops.chunks(m, per):
            cols = (buf["flat"][:m * per].reshape((k, m * ho * wo) if self._transposed
                                                  else (m * ho * wo, k))
                    if self._cols_kept else self._cols(self.xp, n0, n1, buf["flat"]))
            rows = delta[n0 * ho * wo:n1 * ho * wo]
            part = np.matmul(cols if self._transposed else cols.T, rows,
                             out=dk if n0 == 0 else None)
            if n0:
                dk += part
        if self.l2:
            dk += self.l2 * self.kernel.reshape(k, f)
        if self.use_bias:  # Σ δ over examples and pixels: column sums of the long rows
            np.add.reduce(np.add.reduce(self._wide(delta), axis=0).reshape(-1, f), axis=0,
                          out=self.d_bias)
        if not self.needs_input_grad:
            return None
        return self._input_grad(delta, m)

    def _input_grad(self, delta: np.ndarray, m: int) -> np.ndarray:
        """∂J/∂a^(j) = col2im(δ Θᵀ), chunk by chunk, padding cut off."""
        kh, kw, sh, sw, ho, wo, k, per = self._geometry()
        h, w, c = self.input_shape
        pt, pb, pl, pr = self._pads
        buf = self._train
        if "dxp" not in buf:
            buf["dxp"] = np.empty((buf["cap"], h + pt + pb, w + pl + pr, c), self.dtype)
            if pt or pb or pl or pr:
                buf["dx"] = np.empty((buf["cap"], h, w, c), self.dtype)
        dxp = buf["dxp"][:m]
        dxp.fill(0)
        # one GEMM gives ∂J/∂(every column entry), δ Θᵀ, in im2col's layout; col2im adds it up
        kmat = self.kernel.reshape(k, self.filters)
        flat = buf["flat"]
        for n0, n1 in ops.chunks(m, per):
            rows = delta[n0 * ho * wo:n1 * ho * wo]
            p = rows.shape[0]
            if self._transposed:  # (K, P) = Θ δᵀ
                dcols = np.matmul(kmat, rows.T, out=flat[:k * p].reshape(k, p))
            else:  # (P, K) = δ Θᵀ
                dcols = np.matmul(rows, kmat.T, out=flat[:p * k].reshape(p, k))
            ops.col2im_add(dcols, dxp[n0:n1], kh, kw, sh, sw, ho, wo, self._transposed)
        self._cols_kept = False  # dcols overwrote the columns
        if "dx" not in buf:
            return dxp
        dx = buf["dx"][:m]
        np.copyto(dx, dxp[:, pt:pt + h, pl:pl + w])
        return dx

    def preactivation(self, x: Any) -> np.ndarray:
        """z = Θ * a + b (a new array, shape (m, H', W', C_out))."""
        x = self._check_input(x)
        m = x.shape[0]
        ho, wo, f = self.output_shape
        per = self._geometry()[-1]
        z = np.empty((m * ho * wo, f), self.dtype)
        flat = np.empty(min(m, max(1, ops.COLS_BUDGET // per)) * per, self.dtype)
        self._linear(x, self._pad(x, None), z, flat)
        return z.reshape(m, ho, wo, f)

    def forward_with_z(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        z = self.preactivation(x)
        return z, self._activate(z.reshape(-1, self.filters).copy(), None).reshape(z.shape)

    def get_config(self) -> dict[str, Any]:
        return {
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "activation": self.activation.get_config(),
            **self._weights_config(),
            "input_shape": None if self.declared_input_shape is None
            else list(self.declared_input_shape),
            "name": self.name,
        }
