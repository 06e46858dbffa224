r"""Sequential: the lecture's feed-forward network h_Θ(x).

Forward propagation: a^(1) = x; for each layer, z^(l+1) = Θ^(l) a^(l), a^(l+1) = g(z^(l+1));
h_Θ(x) = a^(L). Backpropagation (:meth:`Sequential._forward_backward`, one path from the loss
to the first layer):

- output layer: δ^(L) = a^(L) − y when the loss matches the output activation (softmax +
  cross-entropy, logistic + binary cross-entropy: the two are fused), else
  δ^(L) = ∂J/∂a^(L) ⊙ g'(z^(L)) inside the layer's backward;
- each layer below: δ^(l) = (Θ^(l))ᵀ δ^(l+1) ⊙ g'(z^(l)), computed by ``layer.backward``, which
  also stores ∂J/∂Θ^(l) = δ^(l+1) (a^(l))ᵀ (averaged over the batch: the loss is a mean).

The network is the model; training it (``fit``: batches, optimiser steps, divergence, Ctrl-C,
checkpoints) is :class:`thetanet.training.Trainer`, which Sequential inherits. The model's files
are :mod:`thetanet.saving`; :func:`rebuild`, :func:`load_model` and :func:`load_checkpoint`
turn them back into a Sequential.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thetanet import losses as _losses
from thetanet import metrics as _metrics
from thetanet import optimizers as _optimizers
from thetanet import saving as _saving
from thetanet.checkpoint import CHECKPOINT_NAME, Checkpoint, read_checkpoint
from thetanet.files import ModelFileError
from thetanet.layers import Layer, layer_from_config
from thetanet.layers.base import Shape, as_shape, forward_masked, makes_masks
from thetanet.training import DivergenceWarning, Trainer, batch_rows
from thetanet.utils import check_array

__all__ = ["DivergenceWarning", "Sequential", "load_checkpoint", "load_model", "rebuild"]


@dataclass(frozen=True)
class _Plan:
    """What one training step runs, worked out once per (loss, layers) and cached."""

    loss: _losses.Loss
    #: the output layer's g matches the loss: δ^(L) = a^(L) − y, computed from a^(L) (and z^(L))
    fused: bool
    #: ... and the output layer lets the loss compute a^(L), J and δ^(L) in one pass over z^(L)
    #: into its buffers (softmax + cross-entropy; used for integer labels)
    one_pass: bool
    hidden: tuple[Layer, ...]  # every layer but the output layer, first to last
    below: tuple[Layer, ...]  # the same, last to first: the backward order
    penalized: tuple[Layer, ...]  # layers with a term in J (L2)
    n_layers: int
    #: some layer makes a mask (Embedding(mask_zero=True), Masking): thread it
    masks: bool = False


class Sequential(Trainer):
    """A stack of layers trained by backpropagation, with a Keras-like API.

    Args:
        layers: initial layers (more with :meth:`add`).
        dtype: "float32" (default) or "float64".
        seed: seed for weight initialisation (a ``numpy.random.Generator`` is made from it).
        name: optional name (shown by :meth:`summary`, saved in the config).
    """

    def __init__(self, layers: Iterable[Layer] | None = None, dtype: Any = "float32",
                 seed: int | None = None, name: str | None = None) -> None:
        dt = np.dtype(dtype)
        if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        self.dtype = dt
        self.seed = seed
        self.name = name
        self.layers: list[Layer] = []
        self.built = False
        self.input_shape: Shape | None = None  # one example's shape
        self.input_dim: int | None = None  # its width, for flat inputs
        self.optimizer: _optimizers.Optimizer | None = None
        self.loss: _losses.Loss | None = None
        self.metrics: list[str] = []
        self.stop_training = False
        self.history = None
        self.metadata: dict[str, Any] = {}
        self._plan_cache: _Plan | None = None
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
        (without the batch axis, e.g. (28, 28, 1) for images)."""
        if not self.layers:
            raise ValueError("the model has no layers; add some before building")
        try:
            if isinstance(input_dim, bool):
                raise TypeError("a bool is not a width")
            shape = as_shape(input_dim)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"input_dim must be a positive integer, got {input_dim!r}"
                             ) from exc
        rng = np.random.default_rng(self.seed)
        out = shape
        for i, layer in enumerate(self.layers):
            if layer.name is None:
                layer.name = f"{type(layer).__name__.lower()}_{i}"
            out = as_shape(layer.build(out, dtype=self.dtype, rng=rng))
        seen_params = False  # the first layer with parameters needs no ∂J/∂x: nothing below
        for layer in self.layers:
            layer.needs_input_grad = seen_params
            seen_params = seen_params or bool(layer.params)
        self.input_shape = shape
        self.input_dim = shape[0] if len(shape) == 1 else None
        self.built = True
        self._reseed(None if self.seed is None else self.seed + 1)
        return self

    def _reseed(self, seed: Any) -> np.random.Generator:
        """Give every layer its own generator, derived from ``seed`` (dropout masks)."""
        rng = np.random.default_rng(seed)
        for layer, child in zip(self.layers, rng.spawn(len(self.layers))):
            layer.rng = child
        return rng

    @property
    def output_dim(self) -> int:
        self._require_built()
        return int(self.layers[-1].output_dim)  # type: ignore[arg-type]

    @property
    def params(self) -> list[np.ndarray]:
        return [p for layer in self.layers for p in layer.params]

    @property
    def grads(self) -> list[np.ndarray]:
        return [g for layer in self.layers for g in layer.grads]

    def weight_names(self) -> list[str]:
        return [f"{layer.name}/{n}" for layer in self.layers for n in layer.weight_names]

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def compile(self, optimizer: Any = "sgd", loss: Any = "categorical_crossentropy",
                metrics: Sequence[str] | None = None) -> None:
        """Choose the optimiser (name, config or instance), the loss and the logged metrics."""
        self.optimizer = _optimizers.get(optimizer)
        self.loss = _losses.get(loss)
        self.metrics = list(metrics or [])
        for m in self.metrics:
            _metrics.get(m)

    # -- checks ------------------------------------------------------------------------------
    def _require_built(self) -> None:
        if not self.built:
            raise ValueError("the model is not built yet: call build(input_dim) or fit first")

    def _require_compiled(self) -> None:
        if self.loss is None or self.optimizer is None:
            raise ValueError("the model must be compiled before training: call "
                             "model.compile(optimizer, loss)")

    def _check_x(self, x: Any, name: str = "x") -> Any:
        """x as the model's dtype, finite, of the built input shape (building if needed)."""
        if not (type(x) is np.ndarray and x.dtype == self.dtype and x.ndim == 2
                and x.flags.c_contiguous and x.size and _sum_is_finite(x)):
            x = check_array(x, self.dtype, name,
                            flat=self.input_shape is not None and len(self.input_shape) == 1)
        if not self.built:
            self.build(x.shape[1:])
        if x.shape[1:] != self.input_shape:
            if self.input_dim is not None and x.ndim == 2:
                raise ValueError(f"{name} has {x.shape[1]} features per row but the model "
                                 f"expects {self.input_dim}")
            raise ValueError(f"{name} has examples of shape {tuple(x.shape[1:])} but the model "
                             f"expects {self.input_shape}")
        return x

    def _check_y(self, y: Any, n: int, name: str = "y") -> np.ndarray:
        """Targets in the form the loss wants: int labels for cross-entropy when given as such
        (per step, (n, T), for a sequence output (T, K))."""
        assert self.loss is not None
        shape = self.layers[-1].output_shape
        if shape is not None and len(shape) == 2:
            return self.loss.sequence_targets(y, n, shape, self.dtype, name)
        return self.loss.targets(y, n, self.output_dim, self.dtype, name)

    # -- propagation -------------------------------------------------------------------------
    def _fused(self) -> bool:
        """The output layer's activation is the one the loss fuses with (δ^(L) = a^(L) − y)."""
        assert self.loss is not None
        g = self.layers[-1].output_activation
        return g is not None and g == self.loss.fused_activation

    def _plan(self) -> _Plan:
        plan = self._plan_cache
        if plan is not None and plan.loss is self.loss and plan.n_layers == len(self.layers):
            return plan
        return self._make_plan()

    def _make_plan(self) -> _Plan:
        """Work out (again) what a training step runs: after the loss, the layers or their L2
        terms changed."""
        assert self.loss is not None
        layers, out = tuple(self.layers), self.layers[-1]
        fused = self._fused()
        plan = _Plan(loss=self.loss, fused=fused,
                     one_pass=fused and out.fused_output and self.loss.fused_one_pass,
                     hidden=layers[:-1], below=layers[-2::-1],
                     penalized=tuple(layer for layer in layers if layer.has_penalty),
                     n_layers=len(layers), masks=makes_masks(layers))
        self._plan_cache = plan
        return plan

    def forward_backward(self, x: Any, y: np.ndarray, training: bool = True
                         ) -> tuple[float, np.ndarray]:
        """Forward pass, loss J (with L2 terms) and backprop filling every layer's ``grads``
        with ∂J/∂θ. Returns (J, a^(L)); a^(L) may be a reused buffer: read it before the next
        call."""
        self._make_plan()
        return self._forward_backward(x, y, training)

    def _forward_backward(self, x: Any, y: np.ndarray, training: bool = True,
                          scale: float = 1.0,
                          after_backward: Callable[[Layer], None] | None = None
                          ) -> tuple[float, np.ndarray]:
        """The lecture's forward and backward pass on one batch (runs the cached plan).

        ``scale`` multiplies δ^(L), hence every gradient (backprop is linear in δ^(L): a
        folded learning rate). ``after_backward(layer)`` is called as soon as a layer's
        gradients are complete (a per-layer optimiser update), unless J is not finite.
        """
        plan = self._plan()
        loss_fn = plan.loss
        out = self.layers[-1]
        # forward: a^(l+1) = layer(a^(l)), caching what backward needs
        a, mask = x, None
        if plan.masks:  # sequences with padding: each layer also gets / makes the mask
            a, mask = forward_masked(plan.hidden, a, training, None)
        elif training:
            for layer in plan.hidden:
                a = layer.forward(a, True)
        else:  # no training noise (dropout off), caches kept: gradient checks
            for layer in plan.hidden:
                a = a if layer.stochastic else layer.forward(a, True)
        # the output layer and δ^(L)
        if plan.one_pass and (y.ndim == 1 or y.dtype.kind == "i"):  # labels (per step)
            mask = out.compute_mask(a, mask) if plan.masks else None
            z = out.forward_linear(a)  # z^(L)
            a, delta = out.output_buffers()
            loss = loss_fn.fused_step(y.reshape(-1), z, a, delta, scale,  # a = g(z), J,
                                      mask=None if mask is None else mask.reshape(-1))
            a = a.reshape(*y.shape, -1) if y.ndim == 2 else a  # δ = scale·(a − y)/m
        else:
            if plan.masks:
                a, mask = forward_masked((out,), a, training, mask)
            elif training or not out.stochastic:
                a = out.forward(a, True)
            if plan.fused:  # δ^(L) = (a^(L) − y)/m, J exactly from z^(L)
                loss = loss_fn.value(y, a, out.z, mask=mask)
                delta = loss_fn.fused_delta(y, a, mask=mask)
            else:  # ∂J/∂a^(L); the output layer's backward multiplies by g'(z^(L))
                loss = loss_fn.value(y, a, mask=mask)
                delta = loss_fn.grad(y, a, mask=mask)
            if scale != 1.0:
                delta *= scale
        if after_backward is not None and not math.isfinite(loss):
            after_backward = None  # diverged: leave the weights alone
        # backward: δ^(l) = (Θ^(l))ᵀ δ^(l+1) ⊙ g'(z^(l)), from the output down to the first layer
        # without training the forward skipped the stochastic layers: so does the backward
        # (a dropout mask left by an earlier training forward must not be applied)
        grad = delta if not training and out.stochastic else \
            out.backward(delta, grad_is_preactivation=plan.fused)
        if after_backward is not None:
            after_backward(out)
        for layer in plan.below:
            if grad is None:  # nothing below learns
                break
            if training or not layer.stochastic:
                grad = layer.backward(grad)
            if after_backward is not None:
                after_backward(layer)
        if plan.penalized:  # J += (λ/2)‖kernel‖² per regularised layer
            loss += sum(layer.penalty() for layer in plan.penalized)
        return loss, a

    def predict(self, x: Any, batch_size: int | None = 8192) -> np.ndarray:
        """h_Θ(x) = a^(L) for every row (probabilities for softmax/logistic outputs)."""
        self._require_built()
        x = self._check_x(x)
        n = x.shape[0]
        step = batch_rows(batch_size, n)
        outs = []
        for s in range(0, max(n, 1), max(step, 1)):
            a = forward_masked(self.layers, x[s:s + step], None, None)[0]
            outs.append(np.asarray(a))
        return np.concatenate(outs) if len(outs) > 1 else outs[0].copy()

    def predict_classes(self, x: Any, batch_size: int | None = 8192) -> np.ndarray:
        """Class indices: argmax of a^(L), or a > 0.5 for a single logistic output."""
        return _metrics.to_labels(self.predict(x, batch_size))

    def evaluate(self, x: Any, y: Any, batch_size: int | None = 8192,
                 return_dict: bool = False) -> Any:
        """Loss (with L2 terms) and the compiled metrics on (x, y), without training."""
        self._require_compiled()
        x = self._check_x(x)
        y = self._check_y(y, x.shape[0])
        logs = self._evaluate(x, y, batch_size)
        if return_dict:
            return logs
        return logs["loss"] if not self.metrics else [logs["loss"], *(logs[m]
                                                                      for m in self.metrics)]

    def _evaluate(self, x: Any, y: np.ndarray, batch_size: int | None) -> dict[str, float]:
        assert self.loss is not None
        n = x.shape[0]
        step = batch_rows(batch_size, n)
        total, preds = 0.0, []
        fused = self._fused()
        *hidden, out = self.layers
        for s in range(0, n, step):
            a, mask = forward_masked(hidden, x[s:s + step], None, None)
            z = None
            if fused:  # J from z^(L) (log-sum-exp), as in training
                mask = out.compute_mask(a, mask)
                z, a = out.forward_with_z(a)
            else:
                a, mask = forward_masked((out,), a, None, mask)
            total += self.loss.value(y[s:s + step], a, z, mask=mask) * a.shape[0]
            preds.append(np.asarray(a))
        logs = {"loss": total / max(n, 1) + sum(layer.penalty() for layer in self.layers)}
        out_all = np.concatenate(preds) if preds else np.zeros((0, self.output_dim), self.dtype)
        for m in self.metrics:
            logs[m] = _metrics.get(m)(y, out_all)
        return logs

    # -- weights, config, persistence --------------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        """Copies of every parameter in Keras order (per Dense: kernel (in, out), bias (out,))."""
        return [p.copy() for p in self.params]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        self._require_built()
        params = self.params
        if len(weights) != len(params):
            raise ValueError(f"expected {len(params)} weight arrays, got {len(weights)}")
        for i, (p, w) in enumerate(zip(params, weights)):
            w = np.asarray(w)
            if w.shape != p.shape:
                raise ValueError(f"weight {i} ({self.weight_names()[i]}) must have shape "
                                 f"{p.shape}, got {w.shape}")
            if not np.all(np.isfinite(w)):
                raise ValueError(f"weight {i} ({self.weight_names()[i]}) contains NaN or inf")
            p[...] = w

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

    def get_compile_config(self) -> dict[str, Any] | None:
        if self.loss is None or self.optimizer is None:
            return None
        return {"optimizer": self.optimizer.get_config(), "loss": self.loss.get_config(),
                "metrics": list(self.metrics)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        model = cls([layer_from_config(c) for c in config["layers"]], dtype=config["dtype"],
                    seed=config.get("seed"), name=config.get("name"))
        if config.get("input_dim"):
            model.build(int(config["input_dim"]))
        elif config.get("input_shape"):
            model.build(tuple(config["input_shape"]))
        return model

    def save(self, path: Any, metadata: dict[str, Any] | None = None) -> None:
        """Save architecture (JSON) and weights (.npz) to the directory ``path``, atomically."""
        _saving.save_model(self, path, metadata=metadata)

    def summary(self, print_fn: Any = print) -> str:
        rows = [("Layer", "Output shape", "Params")]
        for layer in self.layers:
            act = layer.output_activation
            label = f"{layer.name} ({type(layer).__name__}" + (f", {act})" if act else ")")
            # per example: the width of flat outputs, H×W×C of feature maps
            shape = "×".join(map(str, layer.output_shape or ())) or "?"
            rows.append((label, shape, str(layer.count_params())))
        w = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}" for r in rows]
        sep = "-" * len(lines[0])
        text = "\n".join([f'Model "{self.name or "sequential"}" ({self.dtype.name})', sep,
                          lines[0], sep, *lines[1:], sep,
                          f"Total params: {self.count_params()}"])
        if print_fn is not None:
            print_fn(text)
        return text


def _sum_is_finite(x: np.ndarray) -> bool:
    """True when every entry of the 2-D float array ``x`` is finite: then so is its sum (a NaN
    or inf makes it NaN or inf; a sum that overflows is settled by the exact check). The row
    sums are one BLAS matrix-vector product over the data, on all of BLAS's threads, without a
    temporary of the array's size."""
    with np.errstate(over="ignore", invalid="ignore"):
        rows = np.dot(x, np.ones(x.shape[1], x.dtype))
        return math.isfinite(float(np.add.reduce(rows)))


# --------------------------------------------------------------------------------------------
# From files back to a network
# --------------------------------------------------------------------------------------------

def rebuild(config: dict[str, Any], weights: Sequence[np.ndarray], compile: bool = True,
            source: Any = None) -> Sequential:
    """The network a model document describes (``config.json``'s content: ``model``, optionally
    ``compile`` and ``metadata``) with the given weights, e.g. from
    :func:`thetanet.saving.read_model`. Problems raise ModelFileError naming ``source``."""
    try:
        model = Sequential.from_config(config["model"])
        if not model.built:
            raise ValueError("the config has no input_dim")
        model.set_weights(weights)
        if compile and config.get("compile"):
            c = config["compile"]
            model.compile(optimizer=c["optimizer"], loss=c["loss"], metrics=c.get("metrics"))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError,
            MemoryError, RecursionError) as exc:
        raise ModelFileError(f"{source or 'model config'}: cannot rebuild the model "
                             f"({type(exc).__name__}: {exc})") from exc
    meta = config.get("metadata", {})
    model.metadata = meta if isinstance(meta, dict) else {}
    return model


def load_model(path: str | os.PathLike[str], compile: bool = True) -> Sequential:
    """Load a model saved by :meth:`Sequential.save`, verifying every weight's checksum.

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
