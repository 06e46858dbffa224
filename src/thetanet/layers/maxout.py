r"""Maxout (Goodfellow et al. 2013): each unit is the max of k affine pieces of its input.

For unit j with pieces k = 1..K:  z_jk = x · w_jk + b_jk,  a_j = max_k z_jk.

The unit "learns its own activation function": the max of K lines is any convex piecewise
linear function of its direction (K = 2 gives ReLU, |x|, leaky ReLU, … as special cases).

==================  ==================================================================
code                meaning
==================  ==================================================================
``kernel``          (s_j, units·K); column j·K + k is piece k of unit j
``bias``            (units·K,)
``z``               x @ kernel + bias, viewed as (m, units, K)
``winner``          argmax_k z_jk per example and unit (the first one on ties)
==================  ==================================================================

Backward: only the winning piece of each unit is active, so δ_jk = grad_j for k = winner and
0 for the others; then ∂J/∂kernel = xᵀ δ (+ λ·kernel with ``l2``), ∂J/∂bias = Σ_rows δ and the
layer below gets δ kernelᵀ. Like ReLU's kink, a tie between pieces is a point of
non-differentiability; the gradient goes to the first maximal piece.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thetanet import initializers as _initializers
from thetanet.blockmatrix import is_sparse
from thetanet.layers.base import Layer, Shape, flat_width, l2_penalty, register_layer


@register_layer
class Maxout(Layer):
    """Maxout layer: ``units`` outputs, each the max over ``pieces`` affine maps of the input.

    Args:
        units: number of outputs.
        pieces: K ≥ 1 affine pieces per unit (K = 1 is a plain linear Dense layer).
        kernel_initializer, bias_initializer: see :mod:`thetanet.initializers`.
        use_bias: include a bias per piece.
        l2: L2 penalty λ on the kernel: adds (λ/2)‖kernel‖² to the loss.
        input_dim: optional input width, to build without data.
    """

    def __init__(self, units: int, pieces: int = 2,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 use_bias: bool = True, l2: float = 0.0, input_dim: int | None = None,
                 name: str | None = None) -> None:
        super().__init__(name)
        for nm, v in (("units", units), ("pieces", pieces)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Maxout {nm} must be a positive integer, got {v!r}")
        if not np.isfinite(l2) or l2 < 0:
            raise ValueError(f"Maxout l2 must be a non-negative number, got {l2!r}")
        self.units = int(units)
        self.pieces = int(pieces)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.use_bias = bool(use_bias)
        self.l2 = float(l2)
        self.declared_input_dim = input_dim
        self.kernel = np.empty((0, 0), np.float32)
        self.bias = np.empty(0, np.float32)

    @property
    def param_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("kernel", "bias") if self.use_bias else ("kernel",)

    def build(self, input_shape: int | Shape, *, dtype: Any, rng: np.random.Generator
              ) -> Shape:
        d = flat_width(input_shape, "Maxout")
        if self.declared_input_dim is not None and d != self.declared_input_dim:
            raise ValueError(f"Maxout declared input_dim={self.declared_input_dim} but receives "
                             f"inputs of width {d}")
        self._set_shapes((d,), (self.units,), dtype)
        width = self.units * self.pieces
        self.kernel = np.ascontiguousarray(
            self.kernel_initializer((self.input_dim, width), rng, self.dtype), self.dtype)
        self.bias = np.ascontiguousarray(
            self.bias_initializer((width,), rng, self.dtype), self.dtype)
        self.d_kernel = np.zeros_like(self.kernel)
        self.d_bias = np.zeros_like(self.bias)
        return (self.units,)

    @property
    def linear_backward(self) -> bool:  # type: ignore[override]
        return not self.l2  # λ·kernel is added to ∂J/∂kernel, unscaled

    @property
    def has_penalty(self) -> bool:
        return bool(self.l2)

    @property
    def params(self) -> list[np.ndarray]:
        return [self.kernel, self.bias] if self.use_bias else [self.kernel]

    @property
    def grads(self) -> list[np.ndarray]:
        return [self.d_kernel, self.d_bias] if self.use_bias else [self.d_kernel]

    def preactivation(self, x: Any) -> np.ndarray:
        """z = x @ kernel + bias, shape (m, units·pieces) (a new array)."""
        z = np.asarray(x @ self.kernel, dtype=self.dtype)
        if self.use_bias:
            z += self.bias
        return z

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        z = self.preactivation(x).reshape(-1, self.units, self.pieces)
        winner = np.argmax(z, axis=2)
        a = np.take_along_axis(z, winner[:, :, None], axis=2)[:, :, 0]
        if training:
            self.x, self.winner = x, winner
        return a

    def backward(self, grad: np.ndarray, *, grad_is_preactivation: bool = False
                 ) -> np.ndarray | None:
        """grad = ∂J/∂a; routed to the winning piece of each unit."""
        m = grad.shape[0]
        delta = np.zeros((m, self.units, self.pieces), self.dtype)
        np.put_along_axis(delta, self.winner[:, :, None], grad[:, :, None], axis=2)
        delta = delta.reshape(m, self.units * self.pieces)
        x = self.x
        if is_sparse(x):
            self.d_kernel[...] = x.T @ delta
        else:
            np.matmul(x.T, delta, out=self.d_kernel)
        if self.l2:
            self.d_kernel += self.l2 * self.kernel
        if self.use_bias:
            np.sum(delta, axis=0, out=self.d_bias)
        if not self.needs_input_grad:
            return None
        return delta @ self.kernel.T

    def penalty(self) -> float:
        """The L2 term (λ/2)‖kernel‖² added to the loss."""
        return l2_penalty(self.kernel, self.l2)

    def get_config(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "pieces": self.pieces,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            "use_bias": self.use_bias,
            "l2": self.l2,
            "input_dim": self.declared_input_dim,
            "name": self.name,
        }
