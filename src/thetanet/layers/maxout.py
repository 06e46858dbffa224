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

from thetanet.blockmatrix import is_sparse
from thetanet.layers.base import Shape, flat_width, register_layer
from thetanet.layers.weighted import WeightedLayer, positive_int


@register_layer
class Maxout(WeightedLayer):
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
        self.units = positive_int(units, "Maxout units")
        self.pieces = positive_int(pieces, "Maxout pieces")
        self._init_weights(kernel_initializer, bias_initializer, use_bias, l2, kernel_ndim=2)
        self.declared_input_dim = input_dim

    def build(self, input_shape: int | Shape, *, dtype: Any, rng: np.random.Generator
              ) -> Shape:
        d = flat_width(input_shape, "Maxout")
        if self.declared_input_dim is not None and d != self.declared_input_dim:
            raise ValueError(f"Maxout declared input_dim={self.declared_input_dim} but receives "
                             f"inputs of width {d}")
        self._set_shapes((d,), (self.units,), dtype)
        width = self.units * self.pieces
        self._create_weights((d, width), width, rng)
        return (self.units,)

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
        dx: np.ndarray = delta @ self.kernel.T  # δ Θᵀ: ∂J/∂x
        return dx

    def get_config(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "pieces": self.pieces,
            **self._weights_config(),
            "input_dim": self.declared_input_dim,
            "name": self.name,
        }
