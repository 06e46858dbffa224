r"""The layer contract shared by every layer.

A layer maps the activations a^(j) of the layer below (``x``, shape (m, s_j), one row per example)
to its own output. ``forward(x, training)`` caches what ``backward`` needs; ``backward(grad)``
takes ∂J/∂(output), fills ``grads`` (same order and shapes as ``params``) and returns ∂J/∂x, or
``None`` when ``needs_input_grad`` is False (the first layer: nothing below it learns).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

_LAYER_CLASSES: dict[str, type[Layer]] = {}


def register_layer(cls: type[Layer]) -> type[Layer]:
    """Class decorator: make ``cls`` loadable from its ``get_config()`` by class name."""
    _LAYER_CLASSES[cls.__name__] = cls
    return cls


def l2_penalty(kernel: np.ndarray, l2: float) -> float:
    """(λ/2)‖kernel‖², the L2 term a layer adds to the loss (bias not regularised)."""
    if not l2:
        return 0.0
    flat = kernel.ravel()
    return 0.5 * l2 * float(np.dot(flat, flat))


def layer_from_config(config: dict[str, Any]) -> Layer:
    """Rebuild an (unbuilt) layer from ``{"class_name": ..., "config": {...}}``."""
    try:
        cls = _LAYER_CLASSES[config["class_name"]]
    except KeyError as exc:
        raise ValueError(f"unknown layer in config: {config.get('class_name')!r}") from exc
    return cls(**config["config"])


class Layer:
    """Base class: subclasses implement ``build``, ``forward``, ``backward``, ``get_config``."""

    #: Names of the arrays in ``params`` (Keras order), e.g. ("kernel", "bias").
    param_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self.built = False
        self.input_dim: int | None = None
        self.output_dim: int | None = None
        self.needs_input_grad = True
        self.dtype: np.dtype = np.dtype(np.float32)
        self.rng: np.random.Generator = np.random.default_rng(0)

    # -- contract ----------------------------------------------------------------------------
    def build(self, input_dim: int, *, dtype: np.dtype, rng: np.random.Generator) -> int:
        """Create parameters for inputs of width ``input_dim``; return the output width."""
        self.input_dim = self.output_dim = int(input_dim)
        self.dtype = np.dtype(dtype)
        self.built = True
        return self.output_dim

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad: np.ndarray, *, grad_is_preactivation: bool = False
                 ) -> np.ndarray | None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    # -- parameters --------------------------------------------------------------------------
    @property
    def params(self) -> list[np.ndarray]:
        """Trainable arrays, updated in place by the optimiser."""
        return []

    @property
    def grads(self) -> list[np.ndarray]:
        """∂J/∂param for each entry of ``params``, filled by ``backward``."""
        return []

    def grad_rows(self) -> list[np.ndarray | None]:
        """Per entry of ``grads``: ``None``, or the sorted rows that the last ``backward`` may
        have made non-zero (all other rows are exactly zero), for lazy optimisers."""
        return [None] * len(self.grads)

    @property
    def weight_names(self) -> list[str]:
        return list(self.param_names)

    def count_params(self) -> int:
        return int(sum(p.size for p in self.params))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if v is not None)
        return f"{type(self).__name__}({args})"
