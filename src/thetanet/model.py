r"""Sequential: the lecture's feed-forward network h_Θ(x) and its training loop.

Forward propagation: a^(1) = x; for each layer, z^(j+1) = Θ^(j) a^(j), a^(j+1) = g(z^(j+1));
h_Θ(x) = a^(L). Backpropagation: δ^(L) = a^(L) − y at the output (softmax + cross-entropy or
logistic + binary cross-entropy, fused), δ^(l) = (Θ^(l))ᵀ δ^(l+1) ⊙ g'(z^(l)) below, and
∂J/∂Θ^(l) = δ^(l+1) (a^(l))ᵀ averaged over the batch. ``batch_size=1`` is online learning,
``batch_size=None`` the full batch, anything between is mini-batch gradient descent.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
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
    """The loss became NaN or inf; training stopped and the best weights so far were restored."""


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
        self._plan_cache: tuple[Any, ...] | None = None
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
        if not (type(x) is np.ndarray and x.dtype == self.dtype and x.ndim == 2
                and x.flags.c_contiguous and x.size and _sum_is_finite(x)):
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

    def _plan(self) -> tuple[Any, ...]:
        """What one training step runs, worked out once per (loss, layers) and cached:
        (loss, fused, fast, forward layers, layers below the output, penalty layers)."""
        plan = self._plan_cache
        if plan is not None and plan[0] is self.loss and plan[6] == len(self.layers):
            return plan
        return self._make_plan()

    def _make_plan(self) -> tuple[Any, ...]:
        layers = self.layers
        last = layers[-1]
        fused = self._fused()
        # softmax + cross-entropy on a Dense output: one pass over z^(L) for a, J and δ
        fast = (fused and isinstance(self.loss, _losses.CategoricalCrossentropy)
                and hasattr(last, "forward_linear") and hasattr(last, "output_buffers"))
        body = tuple(layers[:-1] if fast else layers)
        pen = tuple(layer for layer in layers
                    if hasattr(layer, "penalty") and getattr(layer, "l2", True))
        plan = (self.loss, fused, fast, body, tuple(layers[-2::-1]), pen, len(layers))
        self._plan_cache = plan
        return plan

    def forward_backward(self, x: Any, y: np.ndarray, training: bool = True
                         ) -> tuple[float, np.ndarray]:
        """Forward pass, loss J (with L2 terms) and backprop filling every layer's ``grads``.

        Returns (J, a^(L)); ``a^(L)`` may be a reused buffer: read it before the next call.
        """
        self._make_plan()
        return self._forward_backward(x, y, training)

    def _forward_backward(self, x: Any, y: np.ndarray, training: bool = True,
                          scale: float = 1.0, updates: dict[int, Any] | None = None
                          ) -> tuple[float, np.ndarray]:
        """:meth:`forward_backward` with every gradient multiplied by ``scale`` (backprop is
        linear in δ^(L); the SGD step folds its learning rate in here). Runs the cached plan:
        call :meth:`_make_plan` first when the loss, the layers or their L2 terms changed.

        ``updates`` (plain SGD with η folded in, no L2 terms): ``id(layer)`` → its (θ, η∂J/∂θ)
        pairs; each layer's θ −= η∂J/∂θ is applied as soon as its backward is done (its
        gradient still in cache, the layer below already served), unless J is not finite."""
        loss_fn, fused, fast, body, below, pen = self._plan()[:6]
        a = x
        if training:
            for layer in body:
                a = layer.forward(a, True)
        else:
            for layer in body:
                a = _forward_cached(layer, a)
        last = self.layers[-1]
        if fast and y.ndim == 1:
            z = last.forward_linear(a)
            a, delta = last.output_buffers()
            loss = loss_fn.fused_step(y, z, a, delta, scale)
            last.a = a
            if updates is not None and not math.isfinite(loss):
                updates = None
            grad = last.backward(delta, grad_is_preactivation=True)
            if updates is not None:
                _apply(updates, last)
        else:
            if fast:
                a = last.forward(a, True)
            if fused:
                loss = loss_fn.value(y, a, getattr(last, "z", None))
                delta = loss_fn.fused_delta(y, a)
                if scale != 1.0:
                    delta *= scale
                if updates is not None and not math.isfinite(loss):
                    updates = None
                grad = last.backward(delta, grad_is_preactivation=True)
                if updates is not None:
                    _apply(updates, last)
            else:
                loss = loss_fn.value(y, a)
                grad = loss_fn.grad(y, a)
                if scale != 1.0:
                    grad *= scale
                if updates is not None and not math.isfinite(loss):
                    updates = None
                below = self.layers[::-1]
        if updates is None:
            for layer in below:
                if grad is None:
                    break
                grad = layer.backward(grad)
        else:
            for layer in below:
                if grad is None:
                    break
                grad = layer.backward(grad)
                _apply(updates, layer)
        if pen:
            loss += sum(layer.penalty() for layer in pen)
        return loss, a

    def train_on_batch(self, x: Any, y: Any) -> float:
        """Exactly one update on exactly this batch; returns the loss before the update.

        With plain SGD (no momentum, no L2 terms) η is folded into backprop, so after a training
        step (here or in :meth:`fit`) the layers' ``grads`` hold η·∂J/∂θ, the update applied;
        :meth:`forward_backward` always leaves ∂J/∂θ there."""
        self._require_compiled()
        x = self._check_x(x)
        y = self._check_y(y, x.shape[0])
        return self._train_step(x, y)[0]

    def _folds_lr(self) -> bool:
        """Plain SGD (no momentum) on layers whose backward is linear in the incoming gradient
        and without L2 terms: η is folded into δ^(L), and the update is one pass θ −= η∂J/∂θ.
        """
        opt = self.optimizer
        fold = getattr(opt, "folds_learning_rate", None)
        if fold is None or not fold():
            return False
        from thetanet.layers import Activation, Dense, Dropout, Maxout

        return all(type(layer) in (Dense, Dropout, Activation, Maxout)
                   and not getattr(layer, "l2", 0.0) for layer in self.layers)

    def _step_function(self) -> Any:
        """One optimiser step on a batch, ``step(x, y) -> (J, a^(L))``, with the parameter and
        gradient lists looked up once (valid while the model's arrays are not replaced)."""
        params, grads = self.params, self.grads
        opt = self.optimizer
        self._make_plan()
        fb = self._forward_backward
        isfinite = math.isfinite
        assert opt is not None
        if self._folds_lr():
            updates = {id(layer): list(zip(layer.params, layer.grads)) for layer in self.layers}
            count = opt.apply_scaled  # type: ignore[attr-defined]

            def step(x: Any, y: np.ndarray) -> tuple[float, np.ndarray]:
                loss, a = fb(x, y, True, opt.learning_rate, updates)
                if isfinite(loss):
                    count([], [])  # the updates were applied layer by layer
                return loss, a
        elif getattr(opt, "lazy", False):
            # lazy Adam: the layers say which kernel rows got a gradient (sparse inputs)
            lazy_update, layers = opt.step, self.layers

            def step(x: Any, y: np.ndarray) -> tuple[float, np.ndarray]:
                loss, a = fb(x, y, True)
                if isfinite(loss):
                    lazy_update(params, grads, [r for ly in layers for r in ly.grad_rows()])
                return loss, a
        else:
            update = opt.step

            def step(x: Any, y: np.ndarray) -> tuple[float, np.ndarray]:
                loss, a = fb(x, y, True)
                if isfinite(loss):
                    update(params, grads)
                return loss, a
        return step

    def _train_step(self, x: Any, y: np.ndarray) -> tuple[float, np.ndarray]:
        return self._step_function()(x, y)

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
            callbacks: Sequence[Callback] | None = None,
            checkpoint: str | os.PathLike[str] | None = None, resume: bool = False,
            checkpoint_every: int | None = None) -> History:
        """Train for ``epochs`` passes; returns a :class:`History`.

        ``batch_size``: 1 = online, None = full batch. ``seed`` drives shuffling and dropout.
        ``verbose``: 0 silent, 1 progress bar per epoch, 2 one line per epoch.

        ``checkpoint``: a directory where the complete training state (weights, optimiser
        state, RNG states, position, history, callback states) is written atomically at the
        end of every epoch, every ``checkpoint_every`` batches if given, at the end, and on
        Ctrl-C. ``resume=True`` continues from it (and starts afresh when there is none yet):
        the final weights are bit-identical to an uninterrupted run, however the earlier run
        ended (SIGKILL included). The data, batch size, shuffling, seed, architecture and
        optimiser must be the same; ``epochs`` may be larger.

        Ctrl-C (SIGINT, main thread only) stops after the current batch, writes the checkpoint
        when one is configured, and raises ``KeyboardInterrupt``; a second Ctrl-C aborts at
        once. A NaN/inf loss stops training, restores the best weights so far (lowest
        ``val_loss`` with validation data, else lowest ``loss``; the initial weights if no
        epoch finished) and warns with a :class:`DivergenceWarning`.
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
        if checkpoint_every is not None and (isinstance(checkpoint_every, bool)
                                             or int(checkpoint_every) < 1):
            raise ValueError(f"checkpoint_every must be a positive integer or None, got "
                             f"{checkpoint_every!r}")
        if resume and checkpoint is None:
            raise ValueError("resume=True needs checkpoint=PATH (the directory to resume from)")
        val = None
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (x_val, y_val)")
            xv = self._check_x(validation_data[0], "x_val")
            val = (xv, self._check_y(validation_data[1], xv.shape[0], "y_val"))

        run = _Run(self, n, int(epochs), batch_size, shuffle, seed, val, checkpoint,
                   checkpoint_every)
        rng = self._reseed(seed)
        history = History()
        cbs: list[Callback] = [history, *(callbacks or [])]
        for cb in cbs:
            cb.set_model(self)
        self.stop_training = False
        for cb in cbs:
            cb.on_train_begin()
        if checkpoint is not None:
            run.settings = _run_settings(x, y, val, batch_size, shuffle, seed)
        if resume and _checkpoint_exists(checkpoint):
            run.restore(rng, cbs)
        else:
            run.init_best()
        self.history = history
        with _SigintGuard() as guard:
            self._fit_loop(x, y, run, rng, cbs, guard, verbose)
        for cb in cbs:
            cb.on_train_end()
        return history

    def _fit_loop(self, x: Any, y: np.ndarray, run: _Run, rng: np.random.Generator,
                  cbs: list[Callback], guard: _SigintGuard, verbose: int) -> None:
        """The epochs of :meth:`fit` from the position in ``run`` (0 or a checkpoint's)."""
        n, batch_size, epochs = run.n, run.batch_size, run.epochs
        history = cbs[0]
        assert isinstance(history, History)
        want_train_preds = bool(self.metrics)
        # only callbacks that override on_batch_end are called per batch
        hooks = [cb.on_batch_end for cb in cbs[1:]
                 if getattr(cb.on_batch_end, "__func__", None) is not Callback.on_batch_end]
        step = self._step_function()
        isfinite = math.isfinite
        while run.epoch < epochs and not run.finished:
            epoch = run.epoch
            if run.perm is None and run.offset == 0:  # a fresh epoch (not resumed mid-way)
                for cb in cbs:
                    cb.on_epoch_begin(epoch)
                run.perm = rng.permutation(n) if run.shuffle else np.arange(n)
                run.total = 0.0
                run.preds = (np.empty((n, self.output_dim), self.dtype)
                             if want_train_preds else None)
            perm = run.perm
            assert perm is not None
            bar = _progress(n, epoch, epochs, verbose)
            slow = bool(hooks) or bar is not None or (run.every and run.path is not None)
            preds = run.preds
            try:
                if bar is not None and run.offset:
                    bar.update(run.offset)
                for s, xb, yb in _batches(x, y, perm if run.shuffle else None, run.offset,
                                          batch_size):
                    loss, a = step(xb, yb)
                    if not isfinite(loss):
                        run.diverge(epoch, history)
                        break
                    m = a.shape[0]
                    run.total += loss * m
                    if preds is not None:
                        preds[s:s + m] = a
                    run.offset = s + m
                    if slow:
                        self._after_batch(run, rng, cbs, hooks, bar, s, loss, m, guard)
                    elif guard.requested:
                        self._interrupted(run, rng, cbs, False)
            finally:
                if bar is not None:
                    bar.close()
            if run.finished:  # diverged
                break
            logs: dict[str, float] = {"loss": run.total / n}
            if self.metrics:
                ys = y[perm] if run.shuffle else y
                for mname in self.metrics:
                    logs[mname] = _metrics.get(mname)(ys, run.preds)
            if run.val is not None:
                vlogs = self._evaluate(run.val[0], run.val[1], 8192)
                logs.update({f"val_{k}": v for k, v in vlogs.items()})
            if verbose == 2 or (verbose == 1 and bar is None):
                items = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
                print(f"Epoch {epoch + 1}/{epochs} - {items}", file=sys.stderr)
            for cb in cbs:
                cb.on_epoch_end(epoch, logs)
            run.end_epoch(logs)
            if self.stop_training:
                run.finished = True
            if run.path is not None:
                run.save(rng, cbs)
            if guard.requested:
                self._interrupted(run, rng, cbs, True)
        if run.finished and run.path is not None and run.diverged_now:
            run.save(rng, cbs)

    def _after_batch(self, run: _Run, rng: np.random.Generator, cbs: list[Callback],
                     hooks: list[Any], bar: Any, s: int, loss: float, m: int,
                     guard: _SigintGuard) -> None:
        """Per-batch work of a fit with batch callbacks, a progress bar or batch checkpoints."""
        batch = s // run.batch_size
        for hook in hooks:
            hook(batch, {"loss": loss, "size": m})
        if bar is not None:
            bar.update(m)
            bar.set_postfix_str(f"loss {run.total / (s + m):.4f}", refresh=False)
        saved = False
        if (run.every and (batch + 1) % run.every == 0 and run.offset < run.n
                and run.path is not None):
            run.save(rng, cbs)
            saved = True
        if guard.requested:
            self._interrupted(run, rng, cbs, saved)

    def _interrupted(self, run: _Run, rng: np.random.Generator, cbs: list[Callback],
                     saved: bool) -> None:
        """Ctrl-C was pressed: checkpoint (unless just done) and raise KeyboardInterrupt."""
        where = f"epoch {run.epoch + 1}, {run.offset} of {run.n} examples"
        if run.path is not None:
            if not saved:
                run.save(rng, cbs)
            raise KeyboardInterrupt(f"training interrupted in {where}; checkpoint written to "
                                    f"{run.path} (resume with resume=True / --resume)")
        raise KeyboardInterrupt(f"training interrupted in {where}")

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


def _apply(updates: dict[int, Any], layer: Layer) -> None:
    """θ −= η∂J/∂θ for the (θ, η∂J/∂θ) pairs of ``layer``."""
    for p, g in updates[id(layer)]:
        np.subtract(p, g, out=p)


#: Rows of the training set gathered at a time when shuffling (about this many bytes).
_GATHER_BYTES = 4 << 20


def _batches(x: Any, y: np.ndarray, perm: np.ndarray | None, start: int, batch_size: int
             ) -> Iterable[tuple[int, Any, np.ndarray]]:
    """(offset, x batch, y batch) from example ``start`` on, in the order ``perm`` (None: as
    stored). A dense x is gathered a few MiB at a time into one reused buffer, each row once
    per epoch, so a shuffled epoch never holds a second copy of the data set."""
    n = y.shape[0]
    if perm is None:
        for s in range(start, n, batch_size):
            yield s, x[s:s + batch_size], y[s:s + batch_size]
        return
    if type(x) is not np.ndarray:  # sparse / BlockMatrix: gather the epoch at once
        xs, ys = x[perm], y[perm]
        for s in range(start, n, batch_size):
            yield s, xs[s:s + batch_size], ys[s:s + batch_size]
        return
    row_bytes = max(1, x.itemsize * int(np.prod(x.shape[1:])))
    rows = batch_size * max(1, _GATHER_BYTES // (batch_size * row_bytes))
    rows = min(rows, n - start) if n > start else 0
    if rows <= 0:
        return
    xbuf = np.empty((rows, *x.shape[1:]), x.dtype)
    ybuf = np.empty((rows, *y.shape[1:]), y.dtype)
    for c0 in range(start, n, rows):
        idx = perm[c0:c0 + rows]
        k = idx.shape[0]
        # mode="clip" (the indices are valid) writes straight into out: "raise" buffers a copy
        xc = np.take(x, idx, axis=0, out=xbuf[:k], mode="clip")
        yc = np.take(y, idx, axis=0, out=ybuf[:k], mode="clip")
        for s in range(0, k, batch_size):
            yield c0 + s, xc[s:s + batch_size], yc[s:s + batch_size]


def _sum_is_finite(x: np.ndarray) -> bool:
    """True when every entry of the 2-D float array ``x`` is finite: then so is its sum (a NaN
    or inf makes it NaN or inf; a sum that overflows is settled by the exact check). The row
    sums are one BLAS matrix-vector product over the data, on all of BLAS's threads, without a
    temporary of the array's size."""
    with np.errstate(over="ignore", invalid="ignore"):
        rows = np.dot(x, np.ones(x.shape[1], x.dtype))
        return math.isfinite(float(np.add.reduce(rows)))


def _forward_cached(layer: Layer, a: Any) -> Any:
    """Inference forward that still caches z/a/x so a backward pass is possible (gradcheck)."""
    return layer.forward(a, training=True) if not hasattr(layer, "rate") else a


def _copy_state(state: dict[str, Any]) -> dict[str, Any]:
    return {k: ([a.copy() for a in v] if isinstance(v, list) else v) for k, v in state.items()}


def _checkpoint_exists(path: Any) -> bool:
    from thetanet.checkpoint import checkpoint_exists

    return path is not None and checkpoint_exists(path)


def _run_settings(x: Any, y: np.ndarray, val: tuple[Any, Any] | None, batch_size: int,
                  shuffle: bool, seed: Any) -> dict[str, Any]:
    """What a resumed run must share with the checkpointed one (data by SHA-256)."""
    from thetanet.checkpoint import fingerprint

    return {"data": fingerprint(x, y),
            "validation_data": None if val is None else fingerprint(*val),
            "batch_size": batch_size, "shuffle": bool(shuffle),
            "seed": seed if seed is None or isinstance(seed, (int, str)) else
            int(seed) if isinstance(seed, np.integer) else type(seed).__name__}


class _Run:
    """The mutable state of one ``fit`` call: position, epoch buffers, divergence tracker."""

    def __init__(self, model: Sequential, n: int, epochs: int, batch_size: int, shuffle: bool,
                 seed: Any, val: tuple[Any, np.ndarray] | None, path: Any,
                 every: int | None) -> None:
        self.model = model
        self.n, self.epochs, self.batch_size, self.shuffle = n, epochs, batch_size, shuffle
        self.seed, self.val = seed, val
        self.path = None if path is None else os.fspath(path)
        self.every = None if every is None else int(every)
        self.settings: dict[str, Any] = {}
        self.epoch = 0
        self.offset = 0
        self.perm: np.ndarray | None = None
        self.total = 0.0
        self.preds: np.ndarray | None = None
        self.finished = False
        self.diverged_now = False
        self.monitor = "val_loss" if val is not None else "loss"
        self.best_value = math.inf
        self.best_epoch = -1
        self.best_weights: list[np.ndarray] = []
        self.best_opt: dict[str, Any] = {}

    # -- divergence --------------------------------------------------------------------------
    def init_best(self) -> None:
        """Fall-back weights for a divergence before any epoch ends: those at the start."""
        self.best_weights = self.model.get_weights()
        self.best_opt = _copy_state(self.model.optimizer.get_state())  # type: ignore

    def end_epoch(self, logs: dict[str, float]) -> None:
        value = float(logs.get(self.monitor, math.inf))
        if math.isfinite(value) and value < self.best_value:
            self.best_value, self.best_epoch = value, self.epoch
            self.best_weights = self.model.get_weights()
            self.best_opt = _copy_state(self.model.optimizer.get_state())  # type: ignore
        self.epoch += 1
        self.offset = 0
        self.perm = None
        self.preds = None
        self.total = 0.0

    def diverge(self, epoch: int, history: History) -> None:
        model = self.model
        for p, w in zip(model.params, self.best_weights):  # no finiteness check: restore as is
            p[...] = w
        model.optimizer.set_state(_copy_state(self.best_opt))  # type: ignore[union-attr]
        if self.best_epoch >= 0:
            what = (f"the weights of epoch {self.best_epoch + 1} (best {self.monitor} "
                    f"{self.best_value:.4g}) were restored")
        else:
            what = "the initial weights were restored (no epoch had finished)"
        msg = (f"loss became NaN/inf in epoch {epoch + 1}; training stopped and {what}. Try a "
               f"lower learning rate (now {model.optimizer.learning_rate:g}).")  # type: ignore
        history.stopped_reason = msg
        model.stop_training = True
        self.finished = self.diverged_now = True
        self.offset, self.perm, self.preds, self.total = 0, None, None, 0.0
        warnings.warn(msg, DivergenceWarning, stacklevel=4)

    # -- checkpoints -------------------------------------------------------------------------
    def state(self, rng: np.random.Generator, cbs: list[Callback]) -> dict[str, Any]:
        from thetanet.checkpoint import rng_state

        model = self.model
        mid = self.offset > 0 and self.perm is not None
        return {
            "settings": self.settings,
            "epoch": self.epoch, "offset": self.offset if mid else 0,
            "perm": self.perm if mid else None,
            "total": self.total if mid else 0.0,
            "preds": self.preds[:self.offset] if (mid and self.preds is not None) else None,
            "finished": self.finished,
            "optimizer": model.optimizer.get_state(),  # type: ignore[union-attr]
            "rng": rng_state(rng),
            "layer_rngs": [rng_state(layer.rng) for layer in model.layers],
            "callbacks": [{"class": type(cb).__name__, "state": cb.get_state()} for cb in cbs],
            "best": {"monitor": self.monitor, "value": self.best_value,
                     "epoch": self.best_epoch, "weights": self.best_weights,
                     "optimizer": self.best_opt},
        }

    def save(self, rng: np.random.Generator, cbs: list[Callback]) -> None:
        from thetanet.checkpoint import save_checkpoint

        assert self.path is not None
        save_checkpoint(self.path, self.model, self.state(rng, cbs))

    def restore(self, rng: np.random.Generator, cbs: list[Callback]) -> None:
        """Continue from the checkpoint at ``self.path`` (refused if it is for another run)."""
        from thetanet.checkpoint import CheckpointMismatchError as Mismatch
        from thetanet.checkpoint import describe_mismatch, read_checkpoint
        from thetanet.io import ModelFileError

        model = self.model
        path = self.path
        doc, weights, st = read_checkpoint(path)  # type: ignore[arg-type]
        if not isinstance(st.get("settings"), dict):
            raise ModelFileError(f"{path}/checkpoint.json: malformed training state")
        now = json.loads(json.dumps({"model": model.get_config(),
                                     "compile": model.get_compile_config()}))
        saved_model = doc.get("model") if isinstance(doc.get("model"), dict) else {}
        if (saved_model.get("layers") != now["model"]["layers"]
                or saved_model.get("dtype") != now["model"]["dtype"]):
            raise Mismatch(f"checkpoint {path} was written for a different architecture; "
                           "refusing to resume (remove it or use another --checkpoint)")
        if doc.get("compile") != now["compile"]:
            raise Mismatch(f"checkpoint {path} was written with a different optimiser/loss "
                           f"({doc.get('compile')}); refusing to resume")
        diff = describe_mismatch(st.get("settings", {}), self.settings)
        if diff:
            raise Mismatch(f"checkpoint {path} was written for a different run (differs "
                           f"in: {', '.join(diff)}); refusing to resume")
        try:
            self._restore_state(st, weights, rng, cbs)
        except Mismatch:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError,
                OverflowError) as exc:
            raise ModelFileError(f"{path}/checkpoint.json: malformed training state "
                                 f"({type(exc).__name__}: {exc})") from exc

    def _restore_state(self, st: dict[str, Any], weights: list[np.ndarray],
                       rng: np.random.Generator, cbs: list[Callback]) -> None:
        from thetanet.checkpoint import CheckpointMismatchError as Mismatch
        from thetanet.checkpoint import set_rng_state

        model, path = self.model, self.path
        saved_cbs = st["callbacks"]
        if [c["class"] for c in saved_cbs] != [type(cb).__name__ for cb in cbs]:
            raise Mismatch(f"checkpoint {path} was written with callbacks "
                           f"{[c['class'] for c in saved_cbs][1:]}, this fit has "
                           f"{[type(cb).__name__ for cb in cbs][1:]}; refusing to resume")
        if len(st["layer_rngs"]) != len(model.layers):
            raise Mismatch(f"checkpoint {path}: layer count differs")
        shapes = [p.shape for p in model.params]
        _check_shapes("weights", weights, shapes)
        _check_shapes("best weights", st["best"]["weights"], shapes)
        _check_optimizer_state(st["optimizer"], model.optimizer.get_state(), shapes)
        _check_optimizer_state(st["best"]["optimizer"], model.optimizer.get_state(), shapes)
        model.set_weights(weights)
        model.optimizer.set_state(st["optimizer"])  # type: ignore[union-attr]
        set_rng_state(rng, st["rng"])
        for layer, rs in zip(model.layers, st["layer_rngs"]):
            set_rng_state(layer.rng, rs)
        for cb, saved in zip(cbs, saved_cbs):
            cb.set_state(saved["state"])
        self.epoch, self.offset = int(st["epoch"]), int(st["offset"])
        self.finished = bool(st["finished"])
        model.stop_training = self.finished
        if not 0 <= self.offset <= self.n or not 0 <= self.epoch:
            raise ValueError(f"position epoch {self.epoch}, offset {self.offset} is impossible")
        if self.offset:
            self.perm = np.asarray(st["perm"], dtype=np.int64)
            if self.perm.shape != (self.n,) or not np.array_equal(np.sort(self.perm),
                                                                   np.arange(self.n)):
                raise ValueError("the stored permutation is not one of the examples")
            self.total = float(st["total"])
            if st.get("preds") is not None:
                self.preds = np.empty((self.n, model.output_dim), model.dtype)
                self.preds[:self.offset] = st["preds"]
        best = st["best"]
        self.best_value, self.best_epoch = float(best["value"]), int(best["epoch"])
        self.best_weights = [np.array(w) for w in best["weights"]]
        self.best_opt = _copy_state(best["optimizer"])


def _check_shapes(what: str, arrays: Any, shapes: list[tuple[int, ...]]) -> None:
    """``arrays`` must be float arrays with exactly the parameters' shapes."""
    if (not isinstance(arrays, list) or not all(isinstance(a, np.ndarray) and a.dtype.kind == "f"
                                                for a in arrays)
            or [a.shape for a in arrays] != shapes):
        raise ValueError(f"{what} do not match the model's parameters")


def _check_optimizer_state(state: Any, template: dict[str, Any],
                           shapes: list[tuple[int, ...]]) -> None:
    """A stored optimiser state has the live one's keys: a step count and slots (all empty,
    before the first step, or all one array per parameter)."""
    if not isinstance(state, dict) or set(state) != set(template):
        raise ValueError("optimiser state has the wrong entries")
    it = state["iterations"]
    if isinstance(it, bool) or not isinstance(it, int) or it < 0:
        raise ValueError(f"optimiser step count {it!r:.40} is invalid")
    slots = [k for k in template if k != "iterations"]
    filled = [k for k in slots if not (isinstance(state[k], list) and not state[k])]
    for k in filled:
        _check_shapes(f"optimiser slot {k!r}", state[k], shapes)
    if filled and len(filled) != len(slots):
        raise ValueError("optimiser slots are partly missing")


class _SigintGuard:
    """While active (main thread only): the first SIGINT sets ``requested``, the second raises.

    The previous handler is restored on exit.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt("interrupted twice: aborting at once")
        self.requested = True

    def __enter__(self) -> _SigintGuard:
        if threading.current_thread() is threading.main_thread():
            try:
                self._previous = signal.signal(signal.SIGINT, self._handle)
                self._installed = True
            except (ValueError, OSError):  # pragma: no cover - e.g. no signals here
                self._installed = False
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            prev = self._previous if self._previous is not None else signal.default_int_handler
            signal.signal(signal.SIGINT, prev)
            self._installed = False


def _progress(n: int, epoch: int, epochs: int, verbose: int) -> Any:
    if verbose != 1:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=n, desc=f"Epoch {epoch + 1}/{epochs}", unit="ex", leave=False,
                file=sys.stderr, mininterval=0.2)
