"""Progress on stderr for the CLI's long work (``digits`` training, ``nc search`` and
``digits --search`` trials): a live bar on a terminal, plain lines elsewhere.

The rule every command follows: work longer than a few seconds says so on stderr at once
(a first line before the work starts), then at most every ``every`` seconds a line — or, on a
terminal, a tqdm bar updated as it goes. ``--quiet`` uses none of this. ``nc train`` has its
own, richer display (:mod:`thetanet.cli.nc_progress`).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

from thetanet.callbacks import Callback

__all__ = ["FitProgress", "SearchProgress", "is_terminal"]


def is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _tqdm(stream: TextIO, live: bool | None) -> Any:
    """tqdm when drawing bars (default: on a terminal) and installed, else None."""
    if not (is_terminal(stream) if live is None else live):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


class _Lines:
    """Timestamped lines on ``stream`` (through tqdm's ``write`` while a bar is showing)."""

    def __init__(self, stream: TextIO | None, live: bool | None, every: float) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tqdm = _tqdm(self.stream, live)
        self.every = float(every)
        self.t0 = time.monotonic()
        self.last = float("-inf")

    def say(self, text: str) -> None:
        line = f"[{time.monotonic() - self.t0:6.1f} s] {text}"
        self.last = time.monotonic()
        if self.tqdm is not None:
            self.tqdm.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.every


class FitProgress(Callback):
    """One network trained for ``epochs`` epochs over ``n`` examples, whether ``fit`` runs
    once or once per epoch (it counts the epochs itself): a bar over all of them on a
    terminal, else a first line and then a line at most every ``every`` seconds."""

    def __init__(self, label: str, epochs: int, n: int, stream: TextIO | None = None,
                 live: bool | None = None, every: float = 3.0) -> None:
        super().__init__()
        self.out = _Lines(stream, live, every)
        self.label, self.epochs, self.n = label, int(epochs), int(n)
        self.bar: Any = None
        self.epoch = 0  # epochs finished
        self.seen = 0  # examples of the current epoch
        self.started = False

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.started:
            return
        self.started = True
        self.out.say(f"{self.label}: training, {self.epochs} epochs of {self.n:,} examples")
        if self.out.tqdm is not None:
            self.bar = self.out.tqdm(total=self.epochs * self.n, desc=self.label, unit="ex",
                                     unit_scale=True, file=self.out.stream, leave=False,
                                     mininterval=0.2, dynamic_ncols=True)

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        m = int((logs or {}).get("size", 0))
        self.seen += m
        if self.bar is not None:
            self.bar.update(m)
        elif self.out.due():
            self.out.say(f"{self.label}: epoch {self.epoch + 1}/{self.epochs}, "
                         f"{min(self.seen / max(self.n, 1), 1.0):.0%}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch += 1
        self.seen = 0
        logs = logs or {}
        status = ", ".join(f"{k} {float(logs[k]):.4f}" for k in ("loss", "accuracy")
                           if k in logs and math.isfinite(float(logs[k])))
        if self.bar is not None:
            self.bar.set_postfix_str(f"epoch {self.epoch}/{self.epochs} {status}", refresh=False)
        elif self.out.due() or self.epoch == self.epochs:
            self.out.say(f"{self.label}: epoch {self.epoch}/{self.epochs}"
                         + (f", {status}" if status else ""))
        if self.epoch == self.epochs:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.started:
            took = time.monotonic() - self.out.t0
            self.out.say(f"{self.label}: done, {self.epoch} epochs ({took:.1f} s)")
            self.started = False


class SearchProgress:
    """Trials of a search: a line per ended trial with its value, the best so far and its
    time; between trials, the running trial's latest epoch (a bar's text on a terminal, a
    line at most every ``every`` seconds elsewhere)."""

    def __init__(self, what: str, trials: int | None, stream: TextIO | None = None,
                 live: bool | None = None, every: float = 5.0) -> None:
        self.out = _Lines(stream, live, every)
        self.what = what
        self.best: tuple[float, int] | None = None
        self.trial_start = time.monotonic()
        self.bar: Any = None
        if self.out.tqdm is not None:
            self.bar = self.out.tqdm(total=trials, desc="trials", unit="trial",
                                     file=self.out.stream, leave=False, dynamic_ncols=True)

    def start(self, text: str) -> None:
        self.out.say(text)
        self.trial_start = time.monotonic()

    def on_epoch(self, trial: int, step: int, value: float) -> None:
        status = f"trial {trial}: step {step + 1}, {self.what} {value:.4f}"
        if self.bar is not None:
            self.bar.set_postfix_str(status)
        elif self.out.due():
            self.out.say(status)

    def on_trial(self, trial: Any) -> None:
        took = time.monotonic() - self.trial_start
        self.trial_start = time.monotonic()
        state = getattr(trial.state, "name", str(trial.state)).lower()
        value = trial.value if trial.values else None
        if value is not None and (self.best is None or value > self.best[0]):
            self.best = (float(value), trial.number)
        shown = f"{self.what} {value:.4f}" if value is not None else state
        if state == "pruned":
            steps = trial.last_step + 1 if trial.last_step is not None else 0
            shown = f"pruned after {steps} step(s)"
        best = (f"best {self.best[0]:.4f} (trial {self.best[1]})" if self.best
                else "no finished trial yet")
        self.out.say(f"trial {trial.number}: {shown}; {best}; {took:.1f} s")
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
