r"""Reshape: the same values, another shape per example (e.g. a conv feature map (H, W, C) as
L = H·W locations of C features, (L, C), for attention). Backward reshapes δ back."""

from __future__ import annotations

from typing import Any

import numpy as np

from thetanet.layers.base import Layer, Shape, as_shape, register_layer


@register_layer
class Reshape(Layer):
    """Examples of shape ``target_shape`` (without the batch axis; one entry may be -1)."""

    linear_backward = True

    def __init__(self, target_shape: Any, name: str | None = None) -> None:
        super().__init__(name)
        dims = tuple(int(d) for d in target_shape)
        if not dims or sum(d == -1 for d in dims) > 1 or any(d < 1 and d != -1 for d in dims):
            raise ValueError(f"Reshape target_shape must be positive ints (one may be -1), "
                             f"got {target_shape!r}")
        self.target_shape = dims

    def build(self, input_shape: int | Shape, *, dtype: Any, rng: np.random.Generator
              ) -> Shape:
        shape = as_shape(input_shape)
        size = int(np.prod(shape))
        known = int(np.prod([d for d in self.target_shape if d != -1]))
        out = tuple(size // known if d == -1 else d for d in self.target_shape)
        if int(np.prod(out)) != size:
            raise ValueError(f"Reshape cannot make {shape} ({size} values) into "
                             f"{self.target_shape}")
        self._set_shapes(shape, out, dtype)
        return out

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        x = np.asarray(x)
        return x.reshape(x.shape[0], *(self.output_shape or ()))

    def backward(self, grad: np.ndarray, *, grad_is_preactivation: bool = False
                 ) -> np.ndarray | None:
        if not self.needs_input_grad:
            return None
        return np.reshape(grad, (grad.shape[0], *(self.input_shape or ())))

    def get_config(self) -> dict[str, Any]:
        return {"target_shape": list(self.target_shape), "name": self.name}
