"""Activation: applies g elementwise (or softmax row-wise) as a layer of its own, like Keras."""

from __future__ import annotations

from typing import Any

from thetanet import activations as _activations
from thetanet.layers.base import Layer, register_layer


@register_layer
class Activation(Layer):
    """a = g(z) for the output z of the layer below. ``activation``: a registry name or config."""

    def __init__(self, activation: Any, name: str | None = None) -> None:
        super().__init__(name)
        self.activation = _activations.get(activation)

    @property
    def param_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(f"activation.{k}" for k in self.activation.params)

    def build(self, input_dim, *, dtype, rng):
        out = super().build(input_dim, dtype=dtype, rng=rng)
        self.activation.build(out, self.dtype, rng)
        return out

    @property
    def params(self):
        return list(self.activation.params.values())

    @property
    def grads(self):
        return list(self.activation.grads.values())

    def preactivation(self, x):
        return x

    def forward(self, x, training=False):
        a = self.activation.f(x)
        if training:
            self.z, self.a = x, a
        return a

    def backward(self, grad, *, grad_is_preactivation=False):
        if grad_is_preactivation:
            return grad
        return self.activation.backward(self.z, self.a, grad)

    def get_config(self):
        return {"activation": self.activation.get_config(), "name": self.name}
