"""Callbacks for ``Sequential.fit``: the protocol, History (always), EarlyStopping, and
ProgressLogger (the ``verbose`` display, added by ``fit`` itself).

A callback that keeps state across epochs implements ``get_state``/``set_state`` so a
checkpointed run (``fit(..., checkpoint=PATH)``) resumes it exactly; the state is a JSON-able
structure in which NumPy arrays (and lists of them) may appear anywhere.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


class Callback:
    """Hooks called by ``fit``; set ``self.model.stop_training = True`` to stop after an epoch.

    On a resumed run ``on_train_begin`` is called, then ``set_state`` with the checkpointed
    state; ``on_epoch_begin`` is not repeated for an epoch resumed in the middle.
    """

    model: Any = None

    def set_model(self, model: Any) -> None:
        self.model = model

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None: ...
    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None: ...
    def on_train_end(self, logs: dict[str, Any] | None = None) -> None: ...

    def get_state(self) -> dict[str, Any]:
        """What a checkpoint must hold to resume this callback exactly (default: nothing)."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` returned."""


class History(Callback):
    """``history.history[name]`` is the list of per-epoch values (``loss``, ``val_accuracy`` …)."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.stopped_reason: str | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))

    def get_state(self) -> dict[str, Any]:
        return {"history": {k: list(v) for k, v in self.history.items()},
                "order": list(self.history),
                "epoch": list(self.epoch), "stopped_reason": self.stopped_reason}

    def set_state(self, state: dict[str, Any]) -> None:
        saved = state["history"]
        order = [k for k in state.get("order", []) if k in saved]
        order += [k for k in saved if k not in order]
        self.history = {str(k): [float(x) for x in saved[k]] for k in order}
        self.epoch = [int(e) for e in state["epoch"]]
        self.stopped_reason = state.get("stopped_reason")


class EarlyStopping(Callback):
    """Stop after ``patience`` consecutive epochs without improvement; restore the best weights.

    Keras's (and Lightning's) count: with ``patience=2`` a ``monitor`` that only gets worse
    after epoch 1 stops training at the end of epoch 3 (two epochs without improvement);
    ``patience`` 0 and 1 both stop at the first epoch without improvement. An epoch improves
    when its value beats the best so far by more than ``min_delta`` (``value + min_delta <
    best`` in "min" mode, ``value - min_delta > best`` in "max" mode, as Keras computes it); a
    NaN never improves. ``mode``: "min", "max", or "auto" (max for accuracy/F1-like names,
    else min). ``restore_best_weights``: at the end of training, the weights of the best epoch.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = True) -> None:
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience!r}")
        self.monitor, self.patience, self.min_delta = monitor, int(patience), abs(min_delta)
        if mode == "auto":
            mode = "max" if any(s in monitor for s in ("acc", "f1")) else "min"
        self.mode = mode
        self.restore_best_weights = restore_best_weights
        self.best: float = np.inf if mode == "min" else -np.inf
        self.best_epoch = -1
        self.best_weights: list[np.ndarray] | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value + self.min_delta < self.best
        return value - self.min_delta > self.best

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.best = np.inf if self.mode == "min" else -np.inf
        self.best_epoch, self.wait, self.best_weights, self.stopped_epoch = -1, 0, None, None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which fit did not log "
                             f"(logged: {', '.join(sorted(logs))}); pass validation_data?")
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1  # consecutive epochs without improvement
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    def get_state(self) -> dict[str, Any]:
        return {"best": float(self.best), "best_epoch": self.best_epoch, "wait": self.wait,
                "stopped_epoch": self.stopped_epoch,
                "best_weights": None if self.best_weights is None else list(self.best_weights)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_epoch, self.wait = int(state["best_epoch"]), int(state["wait"])
        self.stopped_epoch = state.get("stopped_epoch")
        bw = state.get("best_weights")
        self.best_weights = None if bw is None else [np.array(w) for w in bw]


class ProgressLogger(Callback):
    """Progress on stderr, as Keras's ``verbose``: 1 a tqdm bar per epoch (one line per epoch
    where tqdm is not installed), 2 one line per epoch, 0 nothing.

    ``fit`` adds it itself, apart from the user's callbacks (a checkpoint does not record it),
    and calls ``on_epoch_begin`` also for an epoch resumed in the middle, with
    ``logs={"offset": examples done, "total": their summed loss}``; :meth:`close` ends a bar
    left open by an interrupted epoch.
    """

    def __init__(self, verbose: int, epochs: int, n: int) -> None:
        self.verbose, self.epochs, self.n = int(verbose), int(epochs), int(n)
        self.bar: Any = None
        self.seen, self.total = 0, 0.0

    @property
    def per_batch(self) -> bool:
        """Whether the current epoch wants ``on_batch_end`` calls (a bar is showing)."""
        return self.bar is not None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        self.seen, self.total = int(logs.get("offset", 0)), float(logs.get("total", 0.0))
        self.bar = None
        if self.verbose != 1:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        self.bar = tqdm(total=self.n, desc=f"Epoch {epoch + 1}/{self.epochs}", unit="ex",
                        leave=False, file=sys.stderr, mininterval=0.2)
        if self.seen:
            self.bar.update(self.seen)

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.bar is None or logs is None:
            return
        m = int(logs["size"])
        self.seen += m
        self.total += float(logs["loss"]) * m
        self.bar.update(m)
        self.bar.set_postfix_str(f"loss {self.total / self.seen:.4f}", refresh=False)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        had_bar = self.bar is not None
        self.close()
        if self.verbose == 2 or (self.verbose == 1 and not had_bar):
            items = " - ".join(f"{k}: {v:.4f}" for k, v in (logs or {}).items())
            print(f"Epoch {epoch + 1}/{self.epochs} - {items}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
