"""Lazy Adam fed the sparse product's compact rows (blockmatrix.TouchedRows): the same
updates, bit for bit, as gathering the rows from the gradient, and as dense Adam on them."""

import numpy as np
import pytest

from thetanet import Dense, Sequential, optimizers
from thetanet.blockmatrix import BlockMatrix, TouchedRows

sp = pytest.importorskip("scipy.sparse")


def _wide(rng, n=80):
    s = sp.csr_matrix(rng.normal(size=(n, 300)) * (rng.random((n, 300)) < 0.01))
    return BlockMatrix.from_parts([s, rng.normal(size=(n, 20)), s[:, :90]])


def test_touched_rows_carry_the_products_rows(rng):
    bm = _wide(rng, 30)
    delta = rng.normal(size=(30, 4)).astype(np.float32)
    out, state = np.zeros((bm.shape[1], 4), np.float32), {}
    bm.astype(np.float32).t_matmul(delta, out, state)
    touched = state["touched"]
    assert isinstance(touched, TouchedRows) and touched.dtype == np.int64
    rows, values = touched.sparse
    np.testing.assert_array_equal(out[rows], values)
    assert [(s.start, s.stop) for s in touched.dense] == [(300, 320)]
    assert set(np.flatnonzero(out.any(axis=1)).tolist()) <= set(np.asarray(touched).tolist())
    np.testing.assert_allclose(out, bm.toarray().T @ delta, rtol=1e-5, atol=1e-5)


def test_compact_rows_equal_plain_rows_and_dense_adam(rng):
    """One step from a TouchedRows hint, from the same rows as a plain array (gathered from
    g), and dense Adam restricted to those rows: equal bit for bit."""
    n_rows, touched = 400, np.array([3, 4, 5, 90, 200, 201, 399])
    g = np.zeros((n_rows, 6), np.float32)
    g[touched] = rng.normal(size=(touched.size, 6))
    dense_part = slice(100, 130)
    g[dense_part] = rng.normal(size=(30, 6))
    all_rows = np.sort(np.concatenate([touched, np.arange(100, 130)]))
    hint = all_rows.view(TouchedRows)
    hint.dense, hint.sparse = [dense_part], (touched, g[touched].copy())
    p0 = rng.normal(size=(n_rows, 6)).astype(np.float32)
    results = []
    for rows in (hint, np.asarray(all_rows), None):
        p = [p0.copy()]
        opt = optimizers.Adam(0.01, lazy=rows is not None)
        for _ in range(3):
            opt.step(p, [g], None if rows is None else [rows])
        results.append(p[0])
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0][all_rows], results[2][all_rows])
    untouched = np.setdiff1d(np.arange(n_rows), all_rows)
    np.testing.assert_array_equal(results[0][untouched], p0[untouched])


def test_training_with_compact_rows_equals_without(rng, monkeypatch):
    """A lazy-Adam MLP on a block input (two sparse blocks around a dense one), float32:
    the same weights bit for bit whether Adam reads the compact rows or gathers them."""
    bm = _wide(rng).astype(np.float32)
    y = rng.integers(0, 3, bm.shape[0])

    def train():
        model = Sequential([Dense(8, "relu"), Dense(3, "softmax")], seed=0)
        model.compile({"name": "adam", "lazy": True}, "sparse_categorical_crossentropy")
        model.fit(bm, y, epochs=3, batch_size=8, seed=1, verbose=0)
        return model.get_weights(), model.layers[0].grad_rows()[0]

    compact, hint = train()
    assert isinstance(hint, TouchedRows) and hint.sparse is not None
    hinted = Dense.grad_rows
    monkeypatch.setattr(Dense, "grad_rows", lambda self: [  # plain arrays: g is gathered
        None if r is None else np.asarray(r) for r in hinted(self)])
    plain, hint = train()
    assert not isinstance(hint, TouchedRows)
    for a, b in zip(compact, plain):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
