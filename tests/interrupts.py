"""Test helper shared by the tests of Ctrl-C during training (imported as ``interrupts``:
pytest puts this folder on the path of its test modules)."""

from __future__ import annotations

import signal

from thetanet.callbacks import Callback


class InterruptAt(Callback):
    """Deliver a real SIGINT to this process after global batch ``k`` (never for k < 1)."""

    def __init__(self, k: int) -> None:
        self.k, self.count = k, 0

    def on_batch_end(self, batch, logs=None):
        self.count += 1
        if self.count == self.k:
            signal.raise_signal(signal.SIGINT)
