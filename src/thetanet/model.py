r"""Sequential: the lecture's feed-forward network h_Θ(x).

Forward propagation: a^(1) = x; for each layer, z^(l+1) = Θ^(l) a^(l), a^(l+1) = g(z^(l+1));
h_Θ(x) = a^(L). A Sequential is the special case of :class:`thetanet.graph.Model` whose nodes
form a chain; its backpropagation (:func:`thetanet.backprop.forward_backward`, one path from the
loss to the first layer; :mod:`thetanet.reference` has the same algorithm in plain NumPy):

- output layer: δ^(L) = a^(L) − y when the loss matches the output activation (softmax +
  cross-entropy, logistic + binary cross-entropy: the two are fused), else
  δ^(L) = ∂J/∂a^(L) ⊙ g'(z^(L)) inside the layer's backward;
- each layer below: δ^(l) = (Θ^(l))ᵀ δ^(l+1) ⊙ g'(z^(l)), computed by ``layer.backward``, which
  also stores ∂J/∂Θ^(l) = δ^(l+1) (a^(l))ᵀ (averaged over the batch: the loss is a mean).

The network is the model; training it (``fit``: batches, optimiser steps, divergence, Ctrl-C,
checkpoints) is :class:`thetanet.training.Trainer`, which every Model inherits. The model's
files are :mod:`thetanet.saving`; :func:`rebuild`, :func:`load_model` and
:func:`load_checkpoint` turn them back into a Sequential or a graph Model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from thetanet import saving as _saving
from thetanet.checkpoint import CHECKPOINT_NAME, Checkpoint, read_checkpoint
from thetanet.files import ModelFileError
from thetanet.graph import Input, Model
from thetanet.layers import Layer, layer_from_config
from thetanet.layers.base import Shape, as_shape
from thetanet.training import DivergenceWarning
from thetanet.utils import check_array

__all__ = ["DivergenceWarning", "Model", "Sequential", "load_checkpoint", "load_model",
           "rebuild"]


class Sequential(Model):
    """A stack of layers trained by backpropagation, with a Keras-like API: the graph whose
    nodes form a chain, one layer after the other.

    Args:
        layers: initial layers (more with :meth:`add`).
        dtype: "float32" (default) or "float64".
        seed: seed for weight initialisation (a ``numpy.random.Generator`` is made from it).
        name: optional name (shown by :meth:`summary`, saved in the config).
    """

    def __init__(self, layers: Iterable[Layer] | None = None, dtype: Any = "float32",
                 seed: int | None = None, name: str | None = None) -> None:
        self._setup(dtype, seed, name)
        self.input_shape: Shape | None = None  # one example's shape
        self.input_dim: int | None = None  # its width, for flat inputs
        self.inputs, self.outputs, self.nodes = [], [], []
        self.many_in = self.many_out = self.shared_layers = False
        for layer in layers or []:
            self.add(layer)

    # -- construction ------------------------------------------------------------------------
    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"expected a thetanet layer, got {type(layer).__name__}")
        if self.built:
            raise ValueError("cannot add layers to a built model")
        self.layers.append(layer)

    def build(self, input_dim: int | Sequence[int]) -> Sequential:
        """Create every layer's parameters for inputs of width ``input_dim`` (rows of
        ``input_dim`` features), or for examples of shape ``input_dim`` when it is a tuple
        (without the batch axis, e.g. (28, 28, 1) for images): the chain
        Input → layer 1 → … → layer L as a graph."""
        if not self.layers:
            raise ValueError("the model has no layers; add some before building")
        try:
            if isinstance(input_dim, bool):
                raise TypeError("a bool is not a width")
            shape = as_shape(input_dim)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"input_dim must be a positive integer, got {input_dim!r}"
                             ) from exc
        inp = Input(shape)
        t = inp
        for layer in self.layers:
            t = layer(t)
        self._init_graph([inp], [t], many_in=False, many_out=False)
        self.input_shape = shape
        self.input_dim = shape[0] if len(shape) == 1 else None
        return self

    def _check_x(self, x: Any, name: str = "x") -> Any:
        """x as the model's dtype, finite, of the built input shape (building if needed)."""
        if not self.built:
            x = check_array(x, self.dtype, name, flat=False)
            self.build(x.shape[1:])
        return super()._check_x(x, name)

    # -- config ------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The architecture: ``input_dim`` for flat inputs, else ``input_shape``."""
        cfg: dict[str, Any] = {
            "name": self.name,
            "dtype": self.dtype.name,
            "seed": self.seed,
            "input_dim": self.input_dim,
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                       for layer in self.layers],
        }
        if self.input_shape is not None and self.input_dim is None:
            cfg["input_shape"] = list(self.input_shape)
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        model = cls([layer_from_config(c) for c in config["layers"]], dtype=config["dtype"],
                    seed=config.get("seed"), name=config.get("name"))
        if config.get("input_dim"):
            model.build(int(config["input_dim"]))
        elif config.get("input_shape"):
            model.build(tuple(config["input_shape"]))
        return model


# --------------------------------------------------------------------------------------------
# From files back to a network
# --------------------------------------------------------------------------------------------

def rebuild(config: dict[str, Any], weights: Sequence[Any], compile: bool = True,
            source: Any = None) -> Model:
    """The network a model document describes (``config.json``'s content: ``model``, optionally
    ``compile`` and ``metadata``) with the given weights, e.g. from
    :func:`thetanet.saving.read_model`. Problems raise ModelFileError naming ``source``."""
    try:
        spec = config["model"]
        model: Model = Model.from_config(spec) if spec.get("class_name") == "Model" else \
            Sequential.from_config(spec)
        if not model.built:
            raise ValueError("the config has no input_dim")
        model.set_weights(weights)
        if compile and config.get("compile"):
            c = config["compile"]
            model.compile(optimizer=c["optimizer"], loss=c["loss"], metrics=c.get("metrics"),
                          loss_weights=c.get("loss_weights"))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError,
            MemoryError, RecursionError) as exc:
        raise ModelFileError(f"{source or 'model config'}: cannot rebuild the model "
                             f"({type(exc).__name__}: {exc})") from exc
    meta = config.get("metadata", {})
    model.metadata = meta if isinstance(meta, dict) else {}
    return model


def load_model(path: str | os.PathLike[str], compile: bool = True) -> Model:
    """Load a model saved by :meth:`Model.save` (a Sequential or a graph), verifying every
    weight's checksum.

    Never executes code from the files. A concurrent save to the same directory is tolerated.
    """
    config, weights = _saving.read_model(path)
    return rebuild(config, weights, compile, Path(path) / _saving.CONFIG_NAME)


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """The model stored in a training checkpoint (compiled, optimiser state restored) and the
    state (:class:`thetanet.checkpoint.Checkpoint`)."""
    path = Path(path)
    cfile = path / CHECKPOINT_NAME
    doc, weights, state = read_checkpoint(path)
    model = rebuild(doc, weights, True, cfile)
    if model.optimizer is not None and isinstance(state.get("optimizer"), dict):
        try:
            model.optimizer.set_state(state["optimizer"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{cfile}: bad optimiser state ({exc})") from exc
    return Checkpoint(path, model, state, doc.get("thetanet_version"), doc)
