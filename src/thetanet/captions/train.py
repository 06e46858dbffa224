r"""Training the captioner: fresh scenes every epoch, teacher forcing, Adam.

Each epoch draws ``scenes_per_epoch`` new scenes from the training digits (seeded by the run's
seed and the epoch), so the network never sees the same scene twice; the mini-batches are the
usual forward ▶ J ▶ backward ▶ optimiser step. After each epoch the validation scenes (from a
part of the training digits held out of the scenes, never the test digits) give the
validation loss and the greedy captions' exact match and per-word accuracy: the learning
curves. ``report`` receives a short line at least every ``report_every`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from thetanet.captions import decode as _decode
from thetanet.captions import metrics as _metrics
from thetanet.captions.model import Captioner
from thetanet.data import scenes as _scenes
from thetanet.optimizers import Adam

__all__ = ["TrainConfig", "caption_images", "split_validation", "train"]


@dataclass
class TrainConfig:
    """The training recipe (saved with the model)."""

    epochs: int = 24
    scenes_per_epoch: int = 4000
    batch_size: int = 32
    learning_rate: float = 0.004
    final_learning_rate: float = 0.0004
    val_scenes: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "scenes_per_epoch", "batch_size", "val_scenes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not 0 < self.final_learning_rate <= self.learning_rate:
            raise ValueError("need 0 < final_learning_rate <= learning_rate")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def rate(self, epoch: int) -> float:
        """η for ``epoch``: geometric decay from learning_rate to final_learning_rate."""
        if self.epochs == 1:
            return self.learning_rate
        ratio = self.final_learning_rate / self.learning_rate
        return self.learning_rate * ratio ** (epoch / (self.epochs - 1))


def split_validation(digits: _scenes.SceneDigits, fraction: float = 0.1
                     ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(training, validation) digits, both from the *training* part: the last ``fraction``
    of it validates; the held-out test digits stay untouched."""
    n = len(digits.train_labels)
    cut = n - max(1, int(round(fraction * n)))
    return ((digits.train_images[:cut], digits.train_labels[:cut]),
            (digits.train_images[cut:], digits.train_labels[cut:]))


def caption_images(cap: Captioner, images: np.ndarray, beam_width: int = 1,
                   batch_size: int = 500) -> list[str]:
    """Captions of ``images`` (n, H, W): greedy (``beam_width`` 1) or beam search."""
    out: list[str] = []
    for s in range(0, len(images), batch_size):
        encoded = cap.encode(images[s:s + batch_size])
        step = cap.step_function(encoded)
        # at most T − 1 words: with <start> they fill the T input steps (for α, teacher-forced)
        args = (step, len(encoded[0]), cap.config.max_len - 1, _scenes.START, _scenes.END)
        ids = (_decode.greedy_decode(*args) if beam_width == 1
               else _decode.beam_search(*args, beam_width=beam_width))
        out += [_scenes.decode_tokens(t) for t in ids]
    return out


def _evaluate(cap: Captioner, val: _scenes.Scenes, inputs: np.ndarray, targets: np.ndarray
              ) -> dict[str, float]:
    loss = cap.train.evaluate(cap.inputs(val.images, inputs), targets)
    hyps = caption_images(cap, val.images)
    return {"val_loss": float(loss),
            "val_exact_match": _metrics.exact_match(val.captions, hyps),
            "val_word_accuracy": _metrics.word_accuracy(val.captions, hyps)}


def train(cap: Captioner, digits: _scenes.SceneDigits, config: TrainConfig,
          report: Callable[[str], None] | None = None, report_every: float = 2.0
          ) -> dict[str, list[float]]:
    """Train ``cap`` in place; returns the history (``loss`` and the ``val_*`` per epoch)."""
    (tr_x, tr_y), (va_x, va_y) = split_validation(digits)
    canvas, T = cap.config.canvas, cap.config.max_len
    val = _scenes.make_scenes(va_x, va_y, config.val_scenes, seed=config.seed + 7919,
                              canvas=canvas)
    val_in, val_out = _scenes.encode_captions(val.captions, T)
    opt = Adam(config.learning_rate)
    cap.train.compile(opt, "sparse_categorical_crossentropy")
    rng = np.random.default_rng(config.seed)
    history: dict[str, list[float]] = {"loss": [], "val_loss": [], "val_exact_match": [],
                                       "val_word_accuracy": []}
    say = report or (lambda _line: None)
    last = time.monotonic()
    for epoch in range(config.epochs):
        opt.learning_rate = config.rate(epoch)
        scenes = _scenes.make_scenes(tr_x, tr_y, config.scenes_per_epoch,
                                     seed=config.seed * 100_003 + epoch, canvas=canvas)
        inputs, targets = _scenes.encode_captions(scenes.captions, T)
        x = cap.inputs(scenes.images, inputs)
        order = rng.permutation(len(scenes))
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            rows = order[start:start + config.batch_size]
            total += cap.train.train_on_batch([a[rows] for a in x], targets[rows]) * rows.size
            if time.monotonic() - last >= report_every:
                last = time.monotonic()
                say(f"epoch {epoch + 1}/{config.epochs}: {start + rows.size}/{len(order)} "
                    f"scenes, loss {total / (start + rows.size):.4f}")
        history["loss"].append(total / len(order))
        for k, v in _evaluate(cap, val, val_in, val_out).items():
            history[k].append(v)
        last = time.monotonic()
        say(f"epoch {epoch + 1}/{config.epochs}: loss {history['loss'][-1]:.4f}, val loss "
            f"{history['val_loss'][-1]:.4f}, val exact match "
            f"{history['val_exact_match'][-1]:.3f}, val word accuracy "
            f"{history['val_word_accuracy'][-1]:.3f}")
    return history
