r"""Merge layers: several tensors in, one out (graph models only).

- ``Concatenate(axis=-1)``: a = [a_1 | a_2 | …] along ``axis``; backward hands each input the
  slice of δ that its columns received.
- ``Add()``: a = a_1 + a_2 + …; every input receives the whole δ (∂a/∂a_i = I).

Masks (sequences): the output's mask is the logical AND of the inputs' masks that exist.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thetanet.layers.base import Layer, Shape, as_shape, register_layer


def _and_masks(masks: Any) -> Any:
    """The steps real in every input that has a mask (None when none has)."""
    present = [m for m in (masks or ()) if m is not None]
    if not present:
        return None
    out = present[0]
    for m in present[1:]:
        out = np.logical_and(out, m)
    return out


class _Merge(Layer):
    """Base of the merge layers: a list of inputs, no parameters."""

    multi_input = True
    linear_backward = True

    def _check_inputs(self, shapes: Any) -> list[Shape]:
        if not isinstance(shapes, (list, tuple)) or len(shapes) < 2:
            raise ValueError(f"{type(self).__name__} merges a list of at least two tensors")
        return [as_shape(s) for s in shapes]

    def compute_mask(self, x: Any, mask: Any) -> Any:
        return _and_masks(mask)

    def _record(self, shapes: list[Shape], out: Shape, dtype: Any) -> Shape:
        self._set_shapes(shapes[0], out, dtype)
        self.input_shapes = shapes
        return out


@register_layer
class Concatenate(_Merge):
    """a = [a_1 | a_2 | …] along ``axis`` of the examples (-1: the last, the features)."""

    def __init__(self, axis: int = -1, name: str | None = None) -> None:
        super().__init__(name)
        if isinstance(axis, bool) or not isinstance(axis, int) or axis == 0:
            raise ValueError(f"Concatenate axis must be a non-zero int (0 is the batch axis), "
                             f"got {axis!r}")
        self.axis = axis
        self._sizes: list[int] = []

    def build(self, input_shape: Any, *, dtype: Any, rng: np.random.Generator) -> Shape:
        shapes = self._check_inputs(input_shape)
        ndim = len(shapes[0])
        ax = self.axis - 1 if self.axis > 0 else self.axis + ndim  # axis of one example
        if not 0 <= ax < ndim or any(len(s) != ndim for s in shapes):
            raise ValueError(f"Concatenate(axis={self.axis}) cannot join shapes {shapes}")
        rest = {s[:ax] + s[ax + 1:] for s in shapes}
        if len(rest) != 1:
            raise ValueError(f"Concatenate(axis={self.axis}): shapes {shapes} differ off the "
                             f"joined axis")
        self._sizes = [s[ax] for s in shapes]
        out = list(shapes[0])
        out[ax] = sum(self._sizes)
        return self._record(shapes, tuple(out), dtype)

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        return np.concatenate([np.asarray(a) for a in x], axis=self.axis)

    def backward(self, grad: np.ndarray, *, grad_is_preactivation: bool = False
                 ) -> list[np.ndarray] | None:
        if not self.needs_input_grad:
            return None
        cuts = np.cumsum(self._sizes)[:-1]
        return [np.ascontiguousarray(g) for g in np.split(grad, cuts, axis=self.axis)]

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis, "name": self.name}


@register_layer
class Add(_Merge):
    """a = a_1 + a_2 + … (inputs of one shape)."""

    def build(self, input_shape: Any, *, dtype: Any, rng: np.random.Generator) -> Shape:
        shapes = self._check_inputs(input_shape)
        if len(set(shapes)) != 1:
            raise ValueError(f"Add needs inputs of one shape, got {shapes}")
        return self._record(shapes, shapes[0], dtype)

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        out = np.add(x[0], x[1])
        for a in x[2:]:
            out += a
        return out

    def backward(self, grad: np.ndarray, *, grad_is_preactivation: bool = False
                 ) -> list[np.ndarray] | None:
        if not self.needs_input_grad:
            return None
        # each input gets its own array: the layers below may scale their δ in place
        return [grad] + [grad.copy() for _ in self.input_shapes[1:]]
