"""Masking: an explicit mask from the data, as Keras's ``Masking(mask_value)``.

A step whose features all equal ``mask_value`` is padding: the layer passes x on unchanged
and its output mask is "any feature ≠ mask_value" per (example, step), so the recurrent layers
above skip the padded steps and the loss does not count them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thetanet.layers.base import Layer, register_layer


@register_layer
class Masking(Layer):
    """Marks the steps of a (batch, T, d) input whose features all equal ``mask_value``."""

    linear_backward = True

    def __init__(self, mask_value: float = 0.0, name: str | None = None) -> None:
        super().__init__(name)
        if not np.isfinite(mask_value):
            raise ValueError(f"Masking mask_value must be finite, got {mask_value!r}")
        self.mask_value = float(mask_value)

    def compute_mask(self, x: Any, mask: np.ndarray | None) -> np.ndarray | None:
        x = np.asarray(x)
        if x.ndim < 3:
            raise ValueError(f"Masking needs (batch, T, features) inputs, got {x.shape}")
        real = np.any(x != self.mask_value, axis=tuple(range(2, x.ndim)))
        return real if mask is None else real & mask

    def forward(self, x: Any, training: bool = False) -> Any:
        return x

    def backward(self, grad: np.ndarray, *, grad_is_preactivation: bool = False
                 ) -> np.ndarray:
        return grad

    def get_config(self) -> dict[str, Any]:
        return {"mask_value": self.mask_value, "name": self.name}
