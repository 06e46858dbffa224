r"""Sequential: the lecture's feed-forward network h_Θ(x) and its training loop.

Forward propagation: a^(1) = x; for each layer, z^(j+1) = Θ^(j) a^(j), a^(j+1) = g(z^(j+1));
h_Θ(x) = a^(L). Backpropagation: δ^(L) = a^(L) − y at the output (softmax + cross-entropy or
logistic + binary cross-entropy, fused), δ^(l) = (Θ^(l))ᵀ δ^(l+1) ⊙ g'(z^(l)) below, and
∂J/∂Θ^(l) = δ^(l+1) (a^(l))ᵀ averaged over the batch. ``batch_size=1`` is online learning,
``batch_size=None`` the full batch, anything between is mini-batch gradient descent.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from thetanet import losses as _losses
from thetanet import metrics as _metrics
from thetanet import optimizers as _optimizers
from thetanet.callbacks import Callback, History
from thetanet.layers import Layer, layer_from_config
from thetanet.utils import check_array


class DivergenceWarning(RuntimeWarning):
    """The loss became NaN or inf; training stopped and the last finite weights were restored."""


class Sequential:
    """A stack of layers trained by backpropagation, with a Keras-like API.

    Args:
        layers: initial layers (more with :meth:`add`).
        dtype: "float32" (default) or "float64".
        seed: seed for weight initialisation (a ``numpy.random.Generator`` is made from it).
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
        self.input_dim: int | None = None
        self.optimizer: _optimizers.Optimizer | None = None
        self.loss: _losses.Loss | None = None
        self.metrics: list[str] = []
        self.stop_training = False
        self.history: History | None = None
        for layer in layers or []:
            self.add(layer)

    # -- construction ------------------------------------------------------------------------
    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"expected a thetanet layer, got {type(layer).__name__}")
        if self.built:
            raise ValueError("cannot add layers to a built model")
        self.layers.append(layer)

    def build(self, input_dim: int) -> Sequential:
        """Create every layer's parameters for inputs of width ``input_dim``."""
        if not self.layers:
            raise ValueError("the model has no layers; add some before building")
        if isinstance(input_dim, bool) or int(input_dim) < 1:
            raise ValueError(f"input_dim must be a positive integer, got {input_dim!r}")
        rng = np.random.default_rng(self.seed)
        width = int(input_dim)
        for i, layer in enumerate(self.layers):
            if layer.name is None:
                layer.name = f"{type(layer).__name__.lower()}_{i}"
            width = layer.build(width, dtype=self.dtype, rng=rng)
        seen_params = False
        for layer in self.layers:
            layer.needs_input_grad = seen_params
            seen_params = seen_params or bool(layer.params)
        self.input_dim = int(input_dim)
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
        x = check_array(x, self.dtype, name)
        if not self.built:
            self.build(x.shape[1])
        if x.shape[1] != self.input_dim:
            raise ValueError(f"{name} has {x.shape[1]} features per row but the model expects "
                             f"{self.input_dim}")
        return x

    def _check_y(self, y: Any, n: int, name: str = "y") -> np.ndarray:
        """Targets in the form the loss wants: int labels for cross-entropy when given as such."""
        assert self.loss is not None
        y = np.asarray(y)
        if y.dtype == object or y.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be numeric, got dtype {y.dtype}")
        if y.shape[0] != n:
            raise ValueError(f"x has {n} rows but {name} has {y.shape[0]}")
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise ValueError(f"{name} contains NaN or inf")
        k = self.output_dim
        if isinstance(self.loss, _losses.CategoricalCrossentropy):
            if y.ndim == 2 and y.shape[1] == 1 and k > 1:
                y = y[:, 0]
            if y.ndim == 1:
                if y.dtype.kind == "f" and np.any(y != np.rint(y)):
                    raise ValueError(f"{name} holds non-integer class labels")
                labels = y.astype(np.int64)
                if labels.size and (labels.min() < 0 or labels.max() >= k):
                    bad = labels[(labels < 0) | (labels >= k)][0]
                    raise ValueError(f"{name} has label {bad}, out of range for the model's {k} "
                                     f"output classes (0..{k - 1})")
                return labels
            if self.loss.sparse_targets:
                raise ValueError(f"sparse_categorical_crossentropy needs integer labels; {name} "
                                 f"has shape {y.shape}")
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2 or y.shape[1] != k:
            raise ValueError(f"{name} has shape {y.shape} but the model has {k} outputs")
        y = np.ascontiguousarray(y, dtype=self.dtype)
        if isinstance(self.loss, _losses.BinaryCrossentropy) and (y.min() < 0 or y.max() > 1):
            raise ValueError(f"{name} must lie in [0, 1] for binary_crossentropy")
        return y

    # -- propagation -------------------------------------------------------------------------
    def _fused(self) -> bool:
        assert self.loss is not None
        act = getattr(self.layers[-1], "activation", None)
        return act is not None and act.name == self.loss.fused_activation

    def forward_backward(self, x: Any, y: np.ndarray, training: bool = True
                         ) -> tuple[float, np.ndarray]:
        """Forward pass, loss J (with L2 terms) and backprop filling every layer's ``grads``.

        Returns (J, a^(L)); ``a^(L)`` may be a reused buffer: read it before the next call.
        """
        assert self.loss is not None
        a = x
        for layer in self.layers:
            a = layer.forward(a, training=True) if training else _forward_cached(layer, a)
        last = self.layers[-1]
        if self._fused():
            loss = self.loss.value(y, a, getattr(last, "z", None))
            grad = last.backward(self.loss.fused_delta(y, a), grad_is_preactivation=True)
            below = self.layers[-2::-1]
        else:
            loss = self.loss.value(y, a)
            grad = self.loss.grad(y, a)
            below = self.layers[::-1]
        for layer in below:
            if grad is None:
                break
            grad = layer.backward(grad)
        penalty = sum(layer.penalty() for layer in self.layers if hasattr(layer, "penalty"))
        return loss + penalty, a

    def train_on_batch(self, x: Any, y: Any) -> float:
        """Exactly one update on exactly this batch; returns the loss before the update."""
        self._require_compiled()
        x = self._check_x(x)
        y = self._check_y(y, x.shape[0])
        return self._train_step(x, y)[0]

    def _train_step(self, x: Any, y: np.ndarray) -> tuple[float, np.ndarray]:
        loss, a = self.forward_backward(x, y, training=True)
        if math.isfinite(loss):
            self.optimizer.step(self.params, self.grads)  # type: ignore[union-attr]
        return loss, a

    def predict(self, x: Any, batch_size: int | None = 8192) -> np.ndarray:
        """h_Θ(x) = a^(L) for every row (probabilities for softmax/logistic outputs)."""
        self._require_built()
        x = self._check_x(x)
        n = x.shape[0]
        step = n if not batch_size else int(batch_size)
        outs = []
        for s in range(0, max(n, 1), max(step, 1)):
            a = x[s:s + step]
            for layer in self.layers:
                a = layer.forward(a, training=False)
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
        step = n if not batch_size else int(batch_size)
        total, preds = 0.0, []
        fused = self._fused()
        for s in range(0, n, step):
            a = x[s:s + step]
            z = None
            for layer in self.layers:
                if fused and layer is self.layers[-1]:
                    z = layer.preactivation(a)  # type: ignore[attr-defined]
                    a = layer.activation.f(z.copy())  # type: ignore[attr-defined]
                else:
                    a = layer.forward(a, training=False)
            yb = y[s:s + step]
            total += self.loss.value(yb, a, z) * a.shape[0]
            preds.append(np.asarray(a))
        pen = sum(layer.penalty() for layer in self.layers if hasattr(layer, "penalty"))
        logs = {"loss": total / max(n, 1) + pen}
        out = np.concatenate(preds) if preds else np.zeros((0, self.output_dim), self.dtype)
        for m in self.metrics:
            logs[m] = _metrics.get(m)(y, out)
        return logs

    # -- training loop -----------------------------------------------------------------------
    def fit(self, x: Any, y: Any, epochs: int = 1, batch_size: int | None = 32,
            validation_data: tuple[Any, Any] | None = None, shuffle: bool = True,
            seed: int | None = None, verbose: int = 1,
            callbacks: Sequence[Callback] | None = None) -> History:
        """Train for ``epochs`` passes; returns a :class:`History`.

        ``batch_size``: 1 = online, None = full batch. ``seed`` drives shuffling and dropout.
        ``verbose``: 0 silent, 1 progress bar per epoch, 2 one line per epoch.
        """
        self._require_compiled()
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
        x = self._check_x(x)
        y = self._check_y(y, x.shape[0])
        n = x.shape[0]
        if n == 0:
            raise ValueError("x has no rows")
        if batch_size is None:
            batch_size = n
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        batch_size = int(batch_size)
        val = None
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (x_val, y_val)")
            xv = self._check_x(validation_data[0], "x_val")
            val = (xv, self._check_y(validation_data[1], xv.shape[0], "y_val"))

        rng = self._reseed(seed)
        history = History()
        cbs: list[Callback] = [history, *(callbacks or [])]
        for cb in cbs:
            cb.set_model(self)
        self.stop_training = False
        for cb in cbs:
            cb.on_train_begin()
        want_train_preds = bool(self.metrics)
        for epoch in range(int(epochs)):
            for cb in cbs:
                cb.on_epoch_begin(epoch)
            snapshot = self.get_weights()
            opt_state = _copy_state(self.optimizer.get_state())  # type: ignore[union-attr]
            if shuffle:
                perm = rng.permutation(n)
                xs, ys = x[perm], y[perm]
            else:
                xs, ys = x, y
            preds = np.empty((n, self.output_dim), self.dtype) if want_train_preds else None
            total = 0.0
            bar = _progress(n, epoch, epochs, verbose)
            diverged = False
            for s in range(0, n, batch_size):
                xb, yb = xs[s:s + batch_size], ys[s:s + batch_size]
                loss, a = self._train_step(xb, yb)
                if not math.isfinite(loss):
                    diverged = True
                    break
                m = a.shape[0]
                total += loss * m
                if preds is not None:
                    preds[s:s + m] = a
                if bar is not None:
                    bar.update(m)
                    bar.set_postfix_str(f"loss {total / (s + m):.4f}", refresh=False)
            if bar is not None:
                bar.close()
            if diverged:
                self.set_weights(snapshot)
                self.optimizer.set_state(opt_state)  # type: ignore[union-attr]
                msg = (f"loss became NaN/inf in epoch {epoch + 1}; training stopped and the "
                       f"weights from the start of that epoch were restored. Try a lower "
                       f"learning rate (now {self.optimizer.learning_rate:g}).")  # type: ignore
                history.stopped_reason = msg
                warnings.warn(msg, DivergenceWarning, stacklevel=2)
                break
            logs: dict[str, float] = {"loss": total / n}
            for mname in self.metrics:
                logs[mname] = _metrics.get(mname)(ys, preds)
            if val is not None:
                vlogs = self._evaluate(val[0], val[1], 8192)
                logs.update({f"val_{k}": v for k, v in vlogs.items()})
            if verbose == 2 or (verbose == 1 and bar is None):
                items = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
                print(f"Epoch {epoch + 1}/{epochs} - {items}", file=sys.stderr)
            for cb in cbs:
                cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for cb in cbs:
            cb.on_train_end()
        self.history = history
        return history

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
        return {
            "name": self.name,
            "dtype": self.dtype.name,
            "seed": self.seed,
            "input_dim": self.input_dim,
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                       for layer in self.layers],
        }

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
        return model

    def save(self, path: Any, metadata: dict[str, Any] | None = None) -> None:
        """Save architecture (JSON) and weights (.npz) to the directory ``path``, atomically."""
        from thetanet.io import save_model

        save_model(self, path, metadata=metadata)

    def to_onnx(self, path: Any = None, **kwargs: Any) -> Any:
        """Export to ONNX (see :func:`thetanet.onnx.to_onnx`; needs the ``onnx`` extra)."""
        from thetanet.onnx import to_onnx

        return to_onnx(self, path, **kwargs)

    def summary(self, print_fn: Any = print) -> str:
        rows = [("Layer", "Output width", "Params")]
        for layer in self.layers:
            act = getattr(layer, "activation", None)
            label = f"{layer.name} ({type(layer).__name__}" + (
                f", {act.name})" if act is not None else ")")
            rows.append((label, str(layer.output_dim or "?"), str(layer.count_params())))
        w = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}" for r in rows]
        sep = "-" * len(lines[0])
        text = "\n".join([f'Model "{self.name or "sequential"}" ({self.dtype.name})', sep,
                          lines[0], sep, *lines[1:], sep,
                          f"Total params: {self.count_params()}"])
        if print_fn is not None:
            print_fn(text)
        return text


def _forward_cached(layer: Layer, a: Any) -> Any:
    """Inference forward that still caches z/a/x so a backward pass is possible (gradcheck)."""
    return layer.forward(a, training=True) if not hasattr(layer, "rate") else a


def _copy_state(state: dict[str, Any]) -> dict[str, Any]:
    return {k: ([a.copy() for a in v] if isinstance(v, list) else v) for k, v in state.items()}


def _progress(n: int, epoch: int, epochs: int, verbose: int) -> Any:
    if verbose != 1:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=n, desc=f"Epoch {epoch + 1}/{epochs}", unit="ex", leave=False,
                file=sys.stderr, mininterval=0.2)
