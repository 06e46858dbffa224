"""Callbacks for ``Sequential.fit``: History (always), EarlyStopping, and the protocol.

A callback that keeps state across epochs implements ``get_state``/``set_state`` so a
checkpointed run (``fit(..., checkpoint=PATH)``) resumes it exactly; the state is a JSON-able
structure in which NumPy arrays (and lists of them) may appear anywhere.
"""

from __future__ import annotations

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

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))

    def get_state(self):
        return {"history": {k: list(v) for k, v in self.history.items()},
                "order": list(self.history),
                "epoch": list(self.epoch), "stopped_reason": self.stopped_reason}

    def set_state(self, state):
        saved = state["history"]
        order = [k for k in state.get("order", []) if k in saved]
        order += [k for k in saved if k not in order]
        self.history = {str(k): [float(x) for x in saved[k]] for k in order}
        self.epoch = [int(e) for e in state["epoch"]]
        self.stopped_reason = state.get("stopped_reason")


class EarlyStopping(Callback):
    """Stop when ``monitor`` stops improving for ``patience`` epochs; restore the best weights.

    ``mode``: "min", "max", or "auto" (max for accuracy/F1-like names, else min).
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
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, logs=None):
        self.best = np.inf if self.mode == "min" else -np.inf
        self.best_epoch, self.wait, self.best_weights, self.stopped_epoch = -1, 0, None, None

    def on_epoch_end(self, epoch, logs=None):
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
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    def get_state(self):
        return {"best": float(self.best), "best_epoch": self.best_epoch, "wait": self.wait,
                "stopped_epoch": self.stopped_epoch,
                "best_weights": None if self.best_weights is None else list(self.best_weights)}

    def set_state(self, state):
        self.best = float(state["best"])
        self.best_epoch, self.wait = int(state["best_epoch"]), int(state["wait"])
        self.stopped_epoch = state.get("stopped_epoch")
        bw = state.get("best_weights")
        self.best_weights = None if bw is None else [np.array(w) for w in bw]
