r"""The fit loop: the lecture's gradient descent over batches, and the machinery around it.

An epoch visits the m training examples in batches (``batch_size=1`` is online learning,
``None`` the full batch, anything between mini-batch gradient descent). Each batch is one
step: the model's forward and backward pass (:func:`thetanet.backprop.forward_backward`, δ from
the loss down to the first layer) fills every layer's ∂J/∂θ, then the optimiser updates Θ.

:class:`Trainer` holds ``fit`` and ``train_on_batch`` and is mixed into ``Sequential``, as
Keras 3 keeps its Trainer apart from its Model: it uses the model through the attributes and
methods declared on the class and never imports :mod:`thetanet.model`.

Around the steps: divergence (a NaN/inf loss stops training and restores the best weights so
far, with a :class:`DivergenceWarning`), checkpoints (:mod:`thetanet.checkpoint`: the whole
state, written every epoch, every k batches and on Ctrl-C; ``resume=True`` continues
bit-identically), Ctrl-C (:class:`_SigintGuard`: the first stops after the batch, the second
aborts), callbacks, and the progress display (:class:`~thetanet.callbacks.ProgressLogger`).

The step (:meth:`Trainer._make_step`) is one of the named strategies of :mod:`thetanet.steps`
(plain, lazy rows, folded η with an update after each layer's backward), chosen once per fit
from what the optimiser and the layers declare.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from thetanet import metrics as _metrics
from thetanet.callbacks import Callback, History, ProgressLogger
from thetanet.checkpoint import (
    RunState,
    checkpoint_exists,
    copy_state,
    resume_training_state,
    run_settings,
    save_training_state,
)
from thetanet.steps import StepParts, choose_step

if TYPE_CHECKING:
    from thetanet.layers import Layer
    from thetanet.losses import Loss
    from thetanet.optimizers import Optimizer

#: One training step on a batch: (x, y) → (J, a^(L)); a^(L) may be a reused buffer.
Step = Callable[[Any, np.ndarray], tuple[float, np.ndarray]]

#: Rows of the training set gathered at a time when shuffling (about this many bytes).
_GATHER_BYTES = 4 << 20


class DivergenceWarning(RuntimeWarning):
    """The loss became NaN or inf; training stopped and the best weights so far were restored."""



def batch_rows(batch_size: Any, n: int) -> int:
    """Rows per batch for ``batch_size`` (an integer ≥ 1, or ``None``: all ``n`` rows).

    ``1.5``, ``"32"``, ``True`` or ``0`` raise ``ValueError`` — never silently rounded."""
    if batch_size is None:
        return max(int(n), 1)
    if isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, (int, np.integer)):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    return int(batch_size)

class Trainer:
    """``fit`` and ``train_on_batch`` for a model with the attributes and methods below."""

    layers: list[Layer]
    optimizer: Optimizer | None
    loss: Loss | None
    metrics: list[str]
    dtype: np.dtype
    stop_training: bool
    history: History | None
    #: some layer is called at several nodes (its ∂J/∂Θ is a sum: no update after backward)
    shared_layers: bool

    if TYPE_CHECKING:
        @property
        def params(self) -> list[np.ndarray]: ...
        @property
        def grads(self) -> list[np.ndarray]: ...
        @property
        def output_dim(self) -> int: ...
        def get_weights(self) -> list[np.ndarray]: ...
        def grad_rows(self) -> list[np.ndarray | None]: ...
        def _require_compiled(self) -> None: ...
        def _check_x(self, x: Any, name: str = "x") -> Any: ...
        def _check_y(self, y: Any, n: int, name: str = "y") -> np.ndarray: ...
        def _reseed(self, seed: Any) -> np.random.Generator: ...
        def _make_plan(self) -> Any: ...
        def _forward_backward(self, x: Any, y: np.ndarray, training: bool = True,
                              scale: float = 1.0,
                              after_backward: Callable[[Layer], None] | None = None
                              ) -> tuple[float, np.ndarray]: ...
        def _evaluate(self, x: Any, y: np.ndarray, batch_size: int | None
                      ) -> dict[str, float]: ...

    # -- one step ----------------------------------------------------------------------------
    def train_on_batch(self, x: Any, y: Any) -> float:
        """Exactly one update on exactly this batch; returns the loss before the update.

        After it the layers' ``grads`` hold ∂J/∂θ, except with a folded learning rate (plain
        SGD, no L2 terms: see :mod:`thetanet.training`), where they hold η·∂J/∂θ, the update
        applied; :meth:`forward_backward` always leaves ∂J/∂θ there."""
        self._require_compiled()
        x = self._check_x(x)
        y = self._check_y(y, x.shape[0])
        return self._make_step()(x, y)[0]

    def _make_step(self) -> Step:
        """One optimiser step on a batch, ``step(x, y) -> (J, a^(L))``: the strategy of
        :mod:`thetanet.steps` that this optimiser and these layers allow, chosen once."""
        opt = self.optimizer
        assert opt is not None
        self._make_plan()
        return choose_step(StepParts(self._forward_backward, opt, self.layers, self.params,
                                     self.grads, self.grad_rows, self.shared_layers))

    # -- the loop ----------------------------------------------------------------------------
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
        batch_size = batch_rows(batch_size, n)
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

        run = _Run(self, n, int(epochs), batch_size, shuffle, val, checkpoint, checkpoint_every)
        rng = self._reseed(seed)
        history = History()
        cbs: list[Callback] = [history, *(callbacks or [])]
        progress = ProgressLogger(verbose, int(epochs), n)
        for cb in (*cbs, progress):
            cb.set_model(self)
        self.stop_training = False
        for cb in cbs:
            cb.on_train_begin()
        if checkpoint is not None:
            run.settings = run_settings(x, y, val, batch_size, shuffle, seed)
        if resume and checkpoint_exists(checkpoint):  # type: ignore[arg-type]
            resume_training_state(checkpoint, run, self, rng, cbs)  # type: ignore[arg-type]
        else:
            run.init_best()
        self.history = history
        try:
            with _SigintGuard() as guard:
                self._fit_loop(x, y, run, rng, cbs, progress, guard)
        finally:
            progress.close()
        for cb in cbs:
            cb.on_train_end()
        return history

    def _fit_loop(self, x: Any, y: np.ndarray, run: _Run, rng: np.random.Generator,
                  cbs: list[Callback], progress: ProgressLogger, guard: _SigintGuard) -> None:
        """The epochs of :meth:`fit` from the position in ``run`` (0 or a checkpoint's)."""
        n, batch_size, epochs = run.n, run.batch_size, run.epochs
        history = cbs[0]
        assert isinstance(history, History)
        want_train_preds = bool(self.metrics)
        # only callbacks that override on_batch_end are called per batch
        hooks = [cb.on_batch_end for cb in cbs[1:]
                 if getattr(cb.on_batch_end, "__func__", None) is not Callback.on_batch_end]
        step = self._make_step()
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
            progress.on_epoch_begin(epoch, {"offset": run.offset, "total": run.total})
            if progress.per_batch:
                hooks_now = [*hooks, progress.on_batch_end]
            else:
                hooks_now = hooks
            slow = bool(hooks_now) or bool(run.every and run.path is not None)
            preds = run.preds
            for s, xb, yb in _batches(x, y, perm if run.shuffle else None, run.offset,
                                      batch_size):
                loss, a = step(xb, yb)
                if not isfinite(loss):
                    run.diverge(epoch, history)
                    break
                m = len(yb)
                run.total += loss * m
                if preds is not None:
                    preds[s:s + m] = a
                run.offset = s + m
                if slow:
                    self._after_batch(run, rng, cbs, hooks_now, s, loss, m, guard)
                elif guard.requested:
                    _interrupted(run, self, rng, cbs, False)
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
            progress.on_epoch_end(epoch, logs)
            for cb in cbs:
                cb.on_epoch_end(epoch, logs)
            run.end_epoch(logs)
            if self.stop_training:
                run.finished = True
            if run.path is not None:
                run.save(rng, cbs)
            if guard.requested:
                _interrupted(run, self, rng, cbs, True)
        if run.finished and run.path is not None and run.diverged_now:
            run.save(rng, cbs)

    def _after_batch(self, run: _Run, rng: np.random.Generator, cbs: list[Callback],
                     hooks: list[Any], s: int, loss: float, m: int,
                     guard: _SigintGuard) -> None:
        """Per-batch work of a fit with batch callbacks, a progress bar or batch checkpoints."""
        batch = s // run.batch_size
        for hook in hooks:
            hook(batch, {"loss": loss, "size": m})
        saved = False
        if (run.every and (batch + 1) % run.every == 0 and run.offset < run.n
                and run.path is not None):
            run.save(rng, cbs)
            saved = True
        if guard.requested:
            _interrupted(run, self, rng, cbs, saved)


def _interrupted(run: _Run, model: Any, rng: np.random.Generator, cbs: list[Callback],
                 saved: bool) -> None:
    """Ctrl-C was pressed: checkpoint (unless just done) and raise KeyboardInterrupt."""
    where = f"epoch {run.epoch + 1}, {run.offset} of {run.n} examples"
    if run.path is not None:
        if not saved:
            run.save(rng, cbs)
        raise KeyboardInterrupt(f"training interrupted in {where}; checkpoint written to "
                                f"{run.path} (resume with resume=True / --resume)")
    raise KeyboardInterrupt(f"training interrupted in {where}")


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
    if type(x) is not np.ndarray or type(y) is not np.ndarray:
        # sparse / BlockMatrix / several inputs or outputs: gather the epoch at once
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


class _Run(RunState):
    """The mutable state of one ``fit`` call: the checkpointed :class:`RunState` plus the run's
    settings and the divergence tracker."""

    def __init__(self, model: Any, n: int, epochs: int, batch_size: int, shuffle: bool,
                 val: tuple[Any, np.ndarray] | None, path: Any, every: int | None) -> None:
        super().__init__(n=n, monitor="val_loss" if val is not None else "loss")
        self.model = model
        self.epochs, self.batch_size, self.shuffle, self.val = epochs, batch_size, shuffle, val
        self.path = None if path is None else os.fspath(path)
        self.every = None if every is None else int(every)
        self.diverged_now = False

    def init_best(self) -> None:
        """Fall-back weights for a divergence before any epoch ends: those at the start."""
        self.best_weights = self.model.get_weights()
        self.best_opt = copy_state(self.model.optimizer.get_state())

    def end_epoch(self, logs: dict[str, float]) -> None:
        value = float(logs.get(self.monitor, math.inf))
        if math.isfinite(value) and value < self.best_value:
            self.best_value, self.best_epoch = value, self.epoch
            self.best_weights = self.model.get_weights()
            self.best_opt = copy_state(self.model.optimizer.get_state())
        self.epoch += 1
        self.offset = 0
        self.perm = None
        self.preds = None
        self.total = 0.0

    def diverge(self, epoch: int, history: History) -> None:
        """J became NaN/inf: restore the best weights so far, stop, warn."""
        model = self.model
        for p, w in zip(model.params, self.best_weights):  # no finiteness check: restore as is
            p[...] = w
        model.optimizer.set_state(copy_state(self.best_opt))
        if self.best_epoch >= 0:
            what = (f"the weights of epoch {self.best_epoch + 1} (best {self.monitor} "
                    f"{self.best_value:.4g}) were restored")
        else:
            what = "the initial weights were restored (no epoch had finished)"
        msg = (f"loss became NaN/inf in epoch {epoch + 1}; training stopped and {what}. Try a "
               f"lower learning rate (now {model.optimizer.learning_rate:g}).")
        history.stopped_reason = msg
        model.stop_training = True
        self.finished = self.diverged_now = True
        self.offset, self.perm, self.preds, self.total = 0, None, None, 0.0
        warnings.warn(msg, DivergenceWarning, stacklevel=4)

    def save(self, rng: np.random.Generator, cbs: list[Callback]) -> None:
        assert self.path is not None
        save_training_state(self.path, self, self.model, rng, cbs)


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
