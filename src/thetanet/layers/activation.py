"""Activation: applies g elementwise (or softmax row-wise) as a layer of its own, like Keras."""

from __future__ import annotations

from typing import Any

import numpy as np

from thetanet import activations as _activations
from thetanet.layers.base import Layer, Shape, as_shape, register_layer


@register_layer
class Activation(Layer):
    """a = g(z) for the output z of the layer below. ``activation``: a registry name or config.

    A learnable g (PReLU, APL, …) gets one parameter set per unit of the last axis (per
    channel for feature maps) when it is per unit.
    """

    propagates_mask = True  # per step on sequences
    linear_backward = True  # δ = grad ⊙ g'(z) and ∂J/∂α = Σ grad ⊙ ∂g/∂α: linear in grad

    def __init__(self, activation: Any, name: str | None = None) -> None:
        super().__init__(name)
        self.activation = _activations.get(activation)

    @property
    def param_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(f"activation.{k}" for k in self.activation.params)

    def build(self, input_shape: int | Shape, *, dtype: Any, rng: np.random.Generator
              ) -> Shape:
        shape = super().build(as_shape(input_shape), dtype=dtype, rng=rng)
        self.activation.build(shape[-1], self.dtype, rng)
        return shape

    @property
    def params(self) -> list[np.ndarray]:
        return list(self.activation.params.values())

    @property
    def grads(self) -> list[np.ndarray]:
        return list(self.activation.grads.values())

    @property
    def output_activation(self) -> str:
        return self.activation.name

    def preactivation(self, x: Any) -> Any:
        """z: the layer's input itself."""
        return x

    def forward_with_z(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        return x, self.activation.f(np.array(x, copy=True))

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        a = self.activation.f(x)
        if training:
            self.z, self.a = x, a
        return a

    def backward(self, grad: np.ndarray, *, grad_is_preactivation: bool = False
                 ) -> np.ndarray:
        if grad_is_preactivation:
            return grad
        return self.activation.backward(self.z, self.a, grad)

    def get_config(self) -> dict[str, Any]:
        return {"activation": self.activation.get_config(), "name": self.name}
