"""A small checkpointed training run for the subprocess tests (SIGKILL / SIGINT / resume).

    python tests/helpers/train_ckpt.py --checkpoint DIR --out RESULT.npz [--resume]
        [--config adam|sgd] [--epochs N] [--every N] [--sleep SECONDS] [--quiet]

Prints ``batch <k>`` (k = batches done in this process) after every batch unless ``--quiet``,
writes the final weights and history to ``--out`` when training ends, and exits with status
130 on Ctrl-C, like the ``thetanet`` command.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

from thetanet import Dense, Dropout, EarlyStopping, Sequential
from thetanet.callbacks import Callback
from thetanet.files import atomic_write_text, save_arrays


class _Ticker(Callback):
    """Announce every batch on stdout (the parent kills at a chosen one); optionally slow."""

    def __init__(self, quiet: bool, sleep: float) -> None:
        self.quiet, self.sleep, self.count = quiet, sleep, 0

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.count += 1
        if not self.quiet:
            print(f"batch {self.count}", flush=True)
        if self.sleep:
            time.sleep(self.sleep)


def data(n: int = 320, d: int = 12, k: int = 3) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(7)
    w = rng.normal(size=(d, k))
    x = rng.normal(size=(n + 96, d)).astype(np.float32)
    y = np.argmax(x @ w + 0.5 * rng.normal(size=(n + 96, k)), axis=1)
    return x[:n], y[:n], x[n:], y[n:]


def build(config: str) -> Sequential:
    if config == "adam":
        model = Sequential([Dense(24, "relu"), Dropout(0.25), Dense(16, "tanh"),
                            Dense(3, "softmax")], seed=3)
        model.compile({"name": "adam", "learning_rate": 0.01},
                      "sparse_categorical_crossentropy", metrics=["accuracy"])
    else:
        model = Sequential([Dense(20, "sigmoid"), Dropout(0.1), Dense(3, "softmax")], seed=4)
        model.compile({"name": "sgd", "learning_rate": 0.1, "momentum": 0.9, "nesterov": True},
                      "sparse_categorical_crossentropy")
    return model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--config", choices=("adam", "sgd"), default="adam")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--every", type=int, default=3)
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    x, y, xv, yv = data()
    model = build(args.config)
    callbacks: list[Callback] = [_Ticker(args.quiet, args.sleep)]
    kwargs: dict[str, Any] = {}
    if args.config == "adam":
        callbacks.append(EarlyStopping("val_loss", patience=100, restore_best_weights=True))
        kwargs["validation_data"] = (xv, yv)
    try:
        hist = model.fit(x, y, epochs=args.epochs, batch_size=8, seed=11, verbose=0,
                         callbacks=callbacks, checkpoint=args.checkpoint, resume=args.resume,
                         checkpoint_every=args.every, **kwargs)
    except KeyboardInterrupt as exc:
        print(f"interrupted: {exc}", file=sys.stderr, flush=True)
        return 130
    save_arrays(args.out, {f"w{i:03d}": w for i, w in enumerate(model.get_weights())})
    atomic_write_text(args.out + ".json", json.dumps({"history": hist.history,
                                                      "epoch": hist.epoch}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
