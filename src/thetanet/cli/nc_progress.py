"""Progress of ``thetanet nc train`` on stderr: live bars on a terminal, plain lines elsewhere.

Every step of the pipeline (loading, features, each member's training, the refit, saving) is
a line prefixed with the time since the start. Each member's training shows its epoch, loss,
val-F1 and patience: on a terminal as a tqdm bar (the refit, which may run beside the
selection in a second thread, gets a bar of its own), otherwise as one line per epoch at most
every ``every`` seconds, plus the member's last line. ``--quiet`` uses the silent
:class:`~thetanet.compounds.progress.Progress` instead.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from thetanet.callbacks import Callback, EarlyStopping
from thetanet.compounds.progress import Progress

__all__ = ["TrainProgress"]


class TrainProgress(Progress):
    """Draws the progress of a training run on ``stream`` (thread-safe).

    ``live``: bars (default: whether ``stream`` is a terminal and tqdm is installed);
    ``every``: the least number of seconds between two plain epoch lines of one member.
    """

    def __init__(self, stream: TextIO | None = None, live: bool | None = None,
                 every: float = 1.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if live is None:
            live = _isatty(self.stream)
        self.tqdm: Any = _tqdm() if live else None
        self.every = float(every)
        self.lock = threading.RLock()
        self.start = time.monotonic()

    def say(self, text: str) -> None:
        line = f"[{time.monotonic() - self.start:6.1f} s] {text}"
        with self.lock:
            if self.tqdm is not None:
                self.tqdm.write(line, file=self.stream)  # above the bars, not through them
            else:
                print(line, file=self.stream, flush=True)

    def phase(self, text: str) -> None:
        self.say(text)

    def member(self, phase: str, index: int, count: int, epochs: int | None,
               es: EarlyStopping | None) -> Callback:
        return _MemberProgress(self, f"{phase} {index + 1}/{count}", epochs, es,
                               position=1 if phase == "refit" else 0)


class _MemberProgress(Callback):
    """One member's training: a bar (terminal) or rate-limited lines."""

    def __init__(self, out: TrainProgress, label: str, epochs: int | None,
                 es: EarlyStopping | None, position: int) -> None:
        self.out, self.label, self.epochs, self.es = out, label, epochs, es
        self.position = position
        self.bar: Any = None
        self.started = self.last_line = 0.0
        self.done = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.started, self.done, self.last_line = time.monotonic(), 0, float("-inf")
        upto = f"up to {self.epochs} epochs" if self.epochs else "epochs as the selection"
        self.out.say(f"{self.label}: training ({upto})")
        if self.out.tqdm is not None:
            with self.out.lock:
                self.bar = self.out.tqdm(total=self.epochs, desc=self.label, unit="epoch",
                                         file=self.out.stream, position=self.position,
                                         leave=False, dynamic_ncols=True, mininterval=0.1)

    def _status(self, epoch: int, logs: dict[str, Any]) -> str:
        text = f"epoch {epoch + 1}" + (f"/{self.epochs}" if self.epochs else "")
        if "loss" in logs:
            text += f", loss {logs['loss']:.4f}"
        es = self.es
        if es is not None and es.monitor in logs:
            text += (f", val-F1 {logs[es.monitor]:.4f} (best {es.best:.4f} at epoch "
                     f"{es.best_epoch + 1}, patience {es.wait}/{es.patience})")
        return text

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.done = epoch + 1
        status = self._status(epoch, logs or {})
        if self.bar is not None:
            with self.out.lock:
                self.bar.set_postfix_str(status.split(", ", 1)[-1], refresh=False)
                self.bar.update(1)
            return
        now = time.monotonic()
        if now - self.last_line >= self.out.every:
            self.last_line = now
            self.out.say(f"{self.label}: {status}")

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.bar is not None:
            with self.out.lock:
                self.bar.close()
            self.bar = None
        took = f"{time.monotonic() - self.started:.1f} s"
        es = self.es
        if es is not None and es.best_epoch >= 0:
            self.out.say(f"{self.label}: stopped after epoch {self.done}; best val-F1 "
                         f"{es.best:.4f} at epoch {es.best_epoch + 1} ({took})")
        elif self.epochs is None:  # beside the selection: cut at its choice, told elsewhere
            self.out.say(f"{self.label}: done ({took})")
        else:
            self.out.say(f"{self.label}: done, {self.done} epochs ({took})")


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _tqdm() -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # the nc extra brings it; without it, plain lines
        return None
    return tqdm
