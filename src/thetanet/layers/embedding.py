r"""Embedding: integer ids → rows of a learned matrix E (Keras 3's ``embeddings``, (V, d)).

    a_t = E[x_t]    the same as one_hot(x_t) E: a Dense layer on a one-hot input, without
                    building the one-hot vectors

Backward: ∂J/∂E = Σ_{(b, t)} one_hot(x_bt)ᵀ ∂J/∂a_bt, i.e. each id's row collects the
gradients of the steps that used it; every other row is exactly zero. So only the rows of
the ids in the batch are written (the previous batch's rows are zeroed first), and
``grad_rows()`` names them: a lazy optimiser (``Adam(lazy=True)``) touches only those rows,
like the wide noun-compound layer's lazy kernel rows. No gradient flows to the ids.

``mask_zero=True``: id 0 is padding; the layer's output mask is x ≠ 0 (the recurrent layers
above skip those steps, the loss does not count them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thetanet import initializers as _initializers
from thetanet.layers.base import Layer, Shape, as_shape, register_layer
from thetanet.layers.weighted import check_budget, positive_int


@register_layer
class Embedding(Layer):
    """Args: input_dim (V, the vocabulary size), output_dim (d), embeddings_initializer
    (Keras's U[−0.05, 0.05] by default), mask_zero, input_length (optional T, checked)."""

    param_names = ("embeddings",)
    linear_backward = True

    def __init__(self, input_dim: int, output_dim: int,
                 embeddings_initializer: Any = "uniform", mask_zero: bool = False,
                 input_length: int | None = None, name: str | None = None) -> None:
        super().__init__(name)
        self.vocab = positive_int(input_dim, "Embedding input_dim")
        self.width = positive_int(output_dim, "Embedding output_dim")
        self.embeddings_initializer = _initializers.get(embeddings_initializer)
        self.mask_zero = bool(mask_zero)
        self.input_length = None if input_length is None else \
            positive_int(input_length, "Embedding input_length")
        self.embeddings = np.empty((0, 0), np.float32)
        self._ids: np.ndarray | None = None
        self._rows: np.ndarray | None = None

    def build(self, input_shape: int | Shape, *, dtype: Any, rng: np.random.Generator
              ) -> Shape:
        shape = as_shape(input_shape)
        if self.input_length is not None and shape[0] != self.input_length:
            raise ValueError(f"Embedding declared input_length={self.input_length} but "
                             f"receives sequences of length {shape[0]}")
        out = (*shape, self.width)
        check_budget(self.vocab * self.width, f"Embedding {self.name!r} ({self.vocab}, "
                     f"{self.width})")
        self._set_shapes(shape, out, dtype)
        self.embeddings = np.ascontiguousarray(
            self.embeddings_initializer((self.vocab, self.width), rng, self.dtype), self.dtype)
        self.d_embeddings = np.zeros_like(self.embeddings)
        self._rows = None
        return out

    @property
    def params(self) -> list[np.ndarray]:
        return [self.embeddings]

    @property
    def grads(self) -> list[np.ndarray]:
        return [self.d_embeddings]

    def grad_rows(self) -> list[np.ndarray | None]:
        """The sorted ids of the last batch: the only rows of ∂J/∂E that may be non-zero."""
        return [self._rows]

    def ids(self, x: Any) -> np.ndarray:
        """x as integer ids in [0, V), or a ValueError."""
        x = np.asarray(x)
        if x.dtype.kind == "f":
            ids = x.astype(np.intp)
            if not np.array_equal(ids, x):
                raise ValueError("Embedding inputs must be integer ids")
        elif x.dtype.kind in "iu":
            ids = x.astype(np.intp, copy=False)
        else:
            raise ValueError(f"Embedding inputs must be integer ids, got dtype {x.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab):
            bad = ids[(ids < 0) | (ids >= self.vocab)].flat[0]
            raise ValueError(f"Embedding got id {bad}, out of range for input_dim="
                             f"{self.vocab} (0..{self.vocab - 1})")
        return ids

    def compute_mask(self, x: Any, mask: np.ndarray | None) -> np.ndarray | None:
        """x ≠ 0 with ``mask_zero`` (and the input mask, if any), else the input mask."""
        if not self.mask_zero:
            return mask
        real = np.asarray(x) != 0
        return real if mask is None else real & mask

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        ids = self.ids(x)
        if training:
            self._ids = ids
        return np.take(self.embeddings, ids, axis=0)  # a = E[x]

    def backward(self, grad: np.ndarray, *, grad_is_preactivation: bool = False) -> None:
        """∂J/∂E[v] = Σ of ∂J/∂a over the steps whose id is v (one sort, one segmented sum)."""
        if self._ids is None:
            raise ValueError("Embedding.backward needs a training forward first")
        d = self.d_embeddings
        if self._rows is None:
            d[...] = 0
        else:
            d[self._rows] = 0  # the last batch's rows: every other row is still zero
        ids = self._ids.reshape(-1)
        g = np.asarray(grad, d.dtype).reshape(ids.size, self.width)
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
        rows = sorted_ids[starts]
        d[rows] = np.add.reduceat(g[order], starts, axis=0)
        self._rows = rows
        return None

    def get_config(self) -> dict[str, Any]:
        return {"input_dim": self.vocab, "output_dim": self.width,
                "embeddings_initializer": _initializers.serialize(self.embeddings_initializer),
                "mask_zero": self.mask_zero, "input_length": self.input_length,
                "name": self.name}
