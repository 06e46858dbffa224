r"""RepeatVector: one vector per example → the same vector at each of ``n`` steps (Keras's).

a[t] = x for t = 1 … n, so (m, d) becomes (m, n, d): an image summary fed to a recurrent
decoder at every step. Backward: x fed every step, so ∂J/∂x = Σ_t ∂J/∂a[t]. No mask: every
step is real (a Concatenate with a masked sequence keeps that sequence's mask).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thetanet.layers.base import Layer, Shape, flat_width, register_layer


@register_layer
class RepeatVector(Layer):
    """(m, d) → (m, n, d), each example's vector repeated ``n`` times."""

    linear_backward = True

    def __init__(self, n: int, name: str | None = None) -> None:
        super().__init__(name)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"RepeatVector n must be a positive integer, got {n!r}")
        self.n = int(n)

    def build(self, input_shape: int | Shape, *, dtype: Any, rng: np.random.Generator
              ) -> Shape:
        d = flat_width(input_shape, "RepeatVector")
        self._set_shapes((d,), (self.n, d), dtype)
        return (self.n, d)

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        x = np.asarray(x)
        return np.ascontiguousarray(np.broadcast_to(x[:, None, :], (x.shape[0], self.n,
                                                                    x.shape[1])))

    def backward(self, grad: np.ndarray, *, grad_is_preactivation: bool = False
                 ) -> np.ndarray | None:
        if not self.needs_input_grad:
            return None
        return np.asarray(grad).sum(axis=1)

    def get_config(self) -> dict[str, Any]:
        return {"n": self.n, "name": self.name}
