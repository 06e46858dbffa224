"""Pins lazy Adam on a plain CSR input (issue 18, behaviour 3).

Lazy Adam updates only the kernel rows whose gradient is non-zero. For an input column that is
zero throughout a batch, ∂J/∂Θ's row is exactly zero — unless L2 is on, where λ·Θ makes every
row non-zero and every row must be updated. The same data as a CSR matrix and as a dense array
must therefore train to the same weights (up to the summation order of xᵀδ), with and without
L2, with and without a hidden layer.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from thetanet import Dense, Sequential

N_ROWS, N_COLS, BATCH, EPOCHS = 48, 200, 8, 6


def _data() -> tuple[sp.csr_matrix, np.ndarray]:
    rng = np.random.default_rng(7)
    rows = np.repeat(np.arange(N_ROWS), 3)  # three active columns per row
    cols = rng.integers(0, N_COLS - 40, rows.size)  # the last 40 columns are never active
    x = sp.csr_matrix((rng.uniform(0.5, 2.0, rows.size), (rows, cols)), (N_ROWS, N_COLS))
    x.sum_duplicates()
    return x, rng.integers(0, 3, N_ROWS)


def _train(x, y, l2: float, hidden: bool) -> list[np.ndarray]:
    layers = [Dense(5, "tanh", l2=l2), Dense(3, "softmax")] if hidden else \
        [Dense(3, "softmax", l2=l2)]
    model = Sequential(layers, dtype="float64", seed=1)
    model.compile({"name": "adam", "learning_rate": 0.05, "lazy": True},
                  "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=EPOCHS, batch_size=BATCH, seed=2, verbose=0)
    return model.get_weights()


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("l2", [0.0, 1e-2])
def test_csr_trains_as_dense_under_lazy_adam(l2, hidden):
    x, y = _data()
    # a batch touches at most 3·8 = 24 of 200 columns: lazy Adam skips most kernel rows
    assert max(np.unique(x[s:s + BATCH].indices).size for s in range(0, N_ROWS, BATCH)) \
        < 0.5 * N_COLS
    w_csr, w_dense = _train(x, y, l2, hidden), _train(x.toarray(), y, l2, hidden)
    for a, b in zip(w_csr, w_dense):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
    first = w_dense[0]
    initial = Sequential([Dense(5 if hidden else 3)], dtype="float64", seed=1).build(N_COLS)
    unused = slice(N_COLS - 40, None)  # rows of columns that never hold an input
    moved = np.abs(first[unused] - initial.get_weights()[0][unused]).max()
    if l2:
        assert moved > 1e-3  # L2 shrinks them every step
    else:
        assert moved == 0.0  # no gradient, lazy Adam leaves them alone
