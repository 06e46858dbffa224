r"""Flatten: (m, H, W, C) feature maps → (m, H·W·C) rows for the Dense layers above.

Channels-last order, like Keras: column (p·W + q)·C + c holds a[n, p, q, c] (C varies
fastest), so a Dense kernel converted from Keras reads the same columns. A reshape, no copy
for contiguous inputs; backward reshapes δ back to the maps' shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thetanet.layers.base import Layer, Shape, as_shape, register_layer


@register_layer
class Flatten(Layer):
    """(m, d_1, …, d_k) → (m, d_1·…·d_k), the last axis varying fastest."""

    linear_backward = True  # a reshape

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)

    def build(self, input_shape: int | Shape, *, dtype: Any, rng: np.random.Generator
              ) -> Shape:
        shape = as_shape(input_shape)
        out = (int(np.prod(shape)),)
        self._set_shapes(shape, out, dtype)
        return out

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        arr: np.ndarray = np.asarray(x)
        if tuple(arr.shape[1:]) != self.input_shape:
            dims = ", ".join(map(str, self.input_shape or ()))
            raise ValueError(f"Flatten expects inputs of shape (m, {dims}), got {arr.shape}")
        return arr.reshape(arr.shape[0], -1)  # = output_dim: the shape was checked above

    def backward(self, grad: np.ndarray, *, grad_is_preactivation: bool = False
                 ) -> np.ndarray | None:
        if not self.needs_input_grad:
            return None
        return np.reshape(grad, (grad.shape[0], *(self.input_shape or ())))

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}
