r"""A recurrent net learns to add: two numbers written as digit strings, read digit by digit.

The numbers a and b (1 … ``max_digits`` digits each) are written least significant digit
first, side by side: step t reads the pair (a_t, b_t) — one token, id 1 + 10·a_t + b_t — and
must output s_t, the t-th digit of a + b. One more step (the pair (0, 0)) writes the final
carry. The digit s_t = (a_t + b_t + carry_t) mod 10 depends on every earlier step through the
carry, which the network has to learn to keep in its state h_t: exactly what a feed-forward
net, which sees one step at a time, cannot do.

Pairs have different lengths: the shorter sequences are padded with id 0, and the model's
``Embedding(mask_zero=True)`` masks those steps, so they change neither the state nor the
loss (a padded batch trains as its sequences one by one).

    ids (m, T) ─Embedding(101, d, mask_zero)─▶ (m, T, d) ─GRU/LSTM/SimpleRNN(u, sequences)─▶
    (m, T, u) ─Dense(10, softmax) at every step─▶ P(s_t | a_≤t, b_≤t) ─sparse cross-entropy
    over the real steps─▶ J

:func:`learn_addition` trains it and reports the accuracy per digit and per whole sum on
held-out pairs, epoch by epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thetanet.callbacks import Callback
from thetanet.layers import GRU, LSTM, Dense, Embedding, SimpleRNN
from thetanet.model import Sequential

__all__ = ["CELLS", "AdditionResult", "addition_data", "addition_model", "learn_addition",
           "read_sums", "sequence_accuracy"]

CELLS = {"gru": GRU, "lstm": LSTM, "simple_rnn": SimpleRNN}


def addition_data(n: int, max_digits: int = 4, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` random sums: (ids (n, T), digits of a + b (n, T), the pairs (n, 2)), with
    T = max_digits + 1, least significant digit first, padded with id 0 (label 0)."""
    if n < 1 or not 1 <= max_digits <= 17:
        raise ValueError(f"need n >= 1 examples of 1 to 17 digits, got n={n}, "
                         f"max_digits={max_digits}")
    rng = np.random.default_rng(seed)
    steps = max_digits + 1
    lengths = rng.integers(1, max_digits + 1, (n, 2))  # digits of a and of b
    low = np.where(lengths > 1, 10 ** (lengths - 1), 0)
    pairs = rng.integers(low, 10 ** lengths)  # a number of exactly that many digits
    place = 10 ** np.arange(steps)
    a_digits = pairs[:, :1] // place % 10
    b_digits = pairs[:, 1:] // place % 10
    s_digits = pairs.sum(axis=1, keepdims=True) // place % 10
    real = np.arange(steps) < lengths.max(axis=1, keepdims=True) + 1  # + the carry step
    x = np.where(real, 1 + 10 * a_digits + b_digits, 0)
    y = np.where(real, s_digits, 0)
    return x.astype(np.int64), y.astype(np.int64), pairs


def addition_model(cell: str = "gru", units: int = 32, width: int = 16, max_digits: int = 4,
                   seed: int = 0, learning_rate: float = 0.01) -> Sequential:
    """Embedding(101, width, mask_zero) → cell(units, every step) → Dense(10, softmax)."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
    model = Sequential([Embedding(101, width, mask_zero=True),
                        CELLS[cell](units, return_sequences=True), Dense(10, "softmax")],
                       seed=seed, name=f"addition_{cell}")
    model.compile({"name": "adam", "learning_rate": learning_rate},
                  "sparse_categorical_crossentropy")
    model.build(max_digits + 1)
    return model


def read_sums(digits: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The numbers written by per-step digits (least significant first) on the real steps."""
    place = 10 ** np.arange(digits.shape[1])
    return np.where(x != 0, digits, 0) @ place


def sequence_accuracy(model: Sequential, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy over the real steps (digits) and over whole sums (every digit right)."""
    pred = model.predict(x).argmax(axis=2)
    real = x != 0
    right = (pred == y) | ~real
    return {"digit_accuracy": float((pred == y)[real].mean()),
            "sum_accuracy": float(right.all(axis=1).mean())}


class _Accuracy(Callback):
    """Held-out accuracies after each epoch, passed on to ``report(epoch, logs)``."""

    def __init__(self, x: np.ndarray, y: np.ndarray,
                 report: Callable[[int, dict[str, float]], None] | None) -> None:
        self.x, self.y, self.report = x, y, report
        self.rows: list[dict[str, float]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        row = {**{k: float(v) for k, v in (logs or {}).items()},
               **{f"val_{k}": v for k, v in sequence_accuracy(self.model, self.x,
                                                              self.y).items()}}
        self.rows.append(row)
        if self.report is not None:
            self.report(epoch, row)


@dataclass
class AdditionResult:
    model: Sequential
    history: dict[str, list[float]]
    digit_accuracy: float
    sum_accuracy: float
    #: a few held-out pairs: (a, b, predicted sum)
    examples: list[tuple[int, int, int]] = field(default_factory=list)


def learn_addition(cell: str = "gru", epochs: int = 8, n_train: int = 2000,
                   n_test: int = 500, max_digits: int = 5, units: int = 32,
                   batch_size: int = 32, seed: int = 0,
                   report: Callable[[int, dict[str, float]], None] | None = None
                   ) -> AdditionResult:
    """Train :func:`addition_model` on ``n_train`` random sums; test on ``n_test`` others."""
    x, y, _ = addition_data(n_train, max_digits, seed)
    xt, yt, pairs = addition_data(n_test, max_digits, seed + 1)
    model = addition_model(cell, units, max_digits=max_digits, seed=seed)
    acc = _Accuracy(xt, yt, report)
    hist = model.fit(x, y, epochs=epochs, batch_size=batch_size, validation_data=(xt, yt),
                     seed=seed, verbose=0, callbacks=[acc])
    history = {k: [r[k] for r in acc.rows] for k in (acc.rows[0] if acc.rows else {})}
    history.setdefault("loss", list(hist.history.get("loss", [])))
    final = sequence_accuracy(model, xt, yt)
    sums = read_sums(model.predict(xt[:5]).argmax(axis=2), xt[:5])
    examples = [(int(a), int(b), int(s)) for (a, b), s in zip(pairs[:5], sums)]
    return AdditionResult(model, history, final["digit_accuracy"], final["sum_accuracy"],
                          examples)
