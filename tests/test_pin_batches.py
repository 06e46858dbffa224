"""Pins the unshuffled mini-batch schedule: ``fit`` on 10 rows with batch size 4 and
``shuffle=False`` is exactly the updates of ``train_on_batch`` on rows 0-3, 4-7 and 8-9 (the
partial batch included), epoch after epoch (issue 18, behaviour 1).

Dropout: ``fit(..., seed=s)`` draws its masks from the layers' generators, which it seeds from
``s``; an unshuffled epoch makes no other draw. ``fit(..., epochs=0, seed=s)`` seeds them the
same way and trains nothing, so the ``train_on_batch`` calls that follow draw the same masks in
the same order, and even with dropout both sides must agree bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from thetanet import Dense, Dropout, Sequential

N, BATCH, EPOCHS, FIT_SEED = 10, 4, 2, 11
OPTIMIZERS = {
    "sgd": {"name": "sgd", "learning_rate": 0.3},
    "sgd-momentum": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9},
    "adam": {"name": "adam", "learning_rate": 0.05},
}


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(N, 6))
    x[rng.random(x.shape) < 0.5] = 0.0  # zeros, so that a CSR copy is really sparse
    return x, rng.integers(0, 3, N)


def _model(opt: str, dropout: float) -> Sequential:
    layers = [Dense(7, "tanh")]
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(Dense(3, "softmax"))
    model = Sequential(layers, dtype="float64", seed=3)
    model.compile(dict(OPTIMIZERS[opt]), "sparse_categorical_crossentropy")
    return model


def _by_hand(model: Sequential, x, y) -> list[float]:
    """The epochs of an unshuffled fit written as train_on_batch calls; per-epoch mean loss."""
    losses = []
    for _ in range(EPOCHS):
        total = 0.0
        for s in range(0, N, BATCH):  # 0:4, 4:8, 8:10 - the last batch has 2 rows
            xb, yb = x[s:s + BATCH], y[s:s + BATCH]
            total += model.train_on_batch(xb, yb) * yb.shape[0]
        losses.append(total / N)
    return losses


@pytest.mark.parametrize("dropout", [0.0, 0.4])
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("sparse", [False, True])
def test_unshuffled_fit_is_train_on_batch_with_the_partial_batch(opt, dropout, sparse):
    x, y = _data()
    if sparse:
        x = sp.csr_matrix(x)
    fitted, by_hand = _model(opt, dropout), _model(opt, dropout)
    assert all(np.array_equal(a, b) for a, b in zip(fitted.build(6).get_weights(),
                                                    by_hand.build(6).get_weights()))

    hist = fitted.fit(x, y, epochs=EPOCHS, batch_size=BATCH, shuffle=False, seed=FIT_SEED,
                      verbose=0)
    by_hand.fit(x, y, epochs=0, seed=FIT_SEED, verbose=0)  # seeds the dropout generators only
    losses = _by_hand(by_hand, x, y)

    for a, b in zip(fitted.get_weights(), by_hand.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(hist.history["loss"], losses, rtol=1e-13)


def test_the_partial_batch_moves_the_weights():
    """The two-row batch is not a no-op: without it the weights differ (guards the test)."""
    x, y = _data()
    full, dropped = _model("sgd", 0.0), _model("sgd", 0.0)
    full.fit(x, y, epochs=1, batch_size=BATCH, shuffle=False, verbose=0)
    for s in range(0, N - N % BATCH, BATCH):
        dropped.train_on_batch(x[s:s + BATCH], y[s:s + BATCH])
    diff = max(float(np.abs(a - b).max())
               for a, b in zip(full.get_weights(), dropped.get_weights()))
    assert diff > 1e-3
