r"""Bidirectional: one recurrent layer reading forwards and a copy reading backwards.

    h→_t = RNN→(x_1 … x_t),   h←_t = RNN←(x_T … x_t),   y_t = [h→_t | h←_t]   (merge "concat")

(``"sum"``: h→_t + h←_t, ``"ave"``: their mean). The backward copy has ``go_backwards``
flipped; its outputs are put back in time order before merging, and with a mask both output 0
at padded steps (``zero_output_for_mask``), as Keras does. Weights: the
forward layer's, then the backward layer's (Keras's ``get_weights()`` order). Backward: the
merged δ is split between the two, each runs its own BPTT, and ∂J/∂x is the sum.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thetanet.layers.base import Layer, Shape, as_shape, layer_from_config, register_layer
from thetanet.layers.recurrent import Recurrent

MERGE_MODES = ("concat", "sum", "ave")


@register_layer
class Bidirectional(Layer):
    """Wraps a SimpleRNN, LSTM or GRU (an instance or its ``{"class_name", "config"}``)."""

    accepts_mask = True
    linear_backward = True

    def __init__(self, layer: Any, merge_mode: str = "concat", name: str | None = None) -> None:
        super().__init__(name)
        if isinstance(layer, dict):
            layer = layer_from_config(layer)
        if not isinstance(layer, Recurrent):
            raise ValueError(f"Bidirectional wraps a recurrent layer (SimpleRNN, LSTM, GRU), "
                             f"got {type(layer).__name__}")
        if layer.return_state:
            raise ValueError("Bidirectional does not support return_state")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        self.merge_mode = merge_mode
        layer.zero_output_for_mask = layer.return_sequences
        self.forward_layer = layer
        cfg = {"class_name": type(layer).__name__, "config": dict(layer.get_config())}
        cfg["config"]["go_backwards"] = not layer.go_backwards
        cfg["config"]["name"] = None
        self.backward_layer = layer_from_config(cfg)
        self.return_sequences = layer.return_sequences

    def build(self, input_shape: int | Shape, *, dtype: Any, rng: np.random.Generator
              ) -> Shape:
        shape = as_shape(input_shape)
        fwd, bwd = self.forward_layer, self.backward_layer
        base = self.name or "bidirectional"
        fwd.name = fwd.name or f"forward_{base}"
        bwd.name = bwd.name or f"backward_{base}"
        out = fwd.build(shape, dtype=dtype, rng=rng)
        bwd.build(shape, dtype=dtype, rng=rng)
        if self.merge_mode == "concat":
            out = (*out[:-1], 2 * out[-1])
        self._set_shapes(shape, out, dtype)
        return out

    @property
    def needs_input_grad(self) -> bool:  # type: ignore[override]
        return self._needs

    @needs_input_grad.setter
    def needs_input_grad(self, value: bool) -> None:
        self._needs = bool(value)
        for layer in (getattr(self, "forward_layer", None), getattr(self, "backward_layer", None)):
            if layer is not None:
                layer.needs_input_grad = self._needs

    @property
    def params(self) -> list[np.ndarray]:
        return self.forward_layer.params + self.backward_layer.params

    @property
    def grads(self) -> list[np.ndarray]:
        return self.forward_layer.grads + self.backward_layer.grads

    @property
    def weight_names(self) -> list[str]:
        return [f"{ly.name}/{n}" for ly in (self.forward_layer, self.backward_layer)
                for n in ly.weight_names]

    def compute_mask(self, x: Any, mask: np.ndarray | None) -> np.ndarray | None:
        return mask if self.return_sequences else None

    def _flip(self, a: np.ndarray) -> np.ndarray:
        """The backward layer's outputs in time order (they come out last step first)."""
        return a[:, ::-1] if self.return_sequences else a

    def forward(self, x: Any, training: bool = False, mask: np.ndarray | None = None
                ) -> np.ndarray:
        a = self.forward_layer.forward(x, training, mask=mask)
        b = self._flip(self.backward_layer.forward(x, training, mask=mask))
        if self.merge_mode == "concat":
            return np.concatenate([a, b], axis=-1)
        out = a + b
        return out * 0.5 if self.merge_mode == "ave" else out

    def backward(self, grad: np.ndarray, *, grad_is_preactivation: bool = False
                 ) -> np.ndarray | None:
        if self.merge_mode == "concat":
            u = self.forward_layer.units
            ga, gb = grad[..., :u], grad[..., u:]
        else:
            ga = grad * 0.5 if self.merge_mode == "ave" else grad
            gb = ga
        dx = self.forward_layer.backward(ga)
        dx_b = self.backward_layer.backward(np.ascontiguousarray(self._flip(gb)))
        if dx is None or dx_b is None:
            return None
        dx += dx_b
        return dx

    def get_config(self) -> dict[str, Any]:
        return {"layer": {"class_name": type(self.forward_layer).__name__,
                          "config": self.forward_layer.get_config()},
                "merge_mode": self.merge_mode, "name": self.name}
