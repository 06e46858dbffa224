import numpy as np
import pytest

from thetanet import Dense, Sequential
from thetanet.blockmatrix import BlockMatrix
from thetanet.gradcheck import gradcheck

sp = pytest.importorskip("scipy.sparse")


def _blocks(rng, n=40):
    dense = rng.normal(size=(n, 5))
    s1 = sp.csr_matrix(rng.normal(size=(n, 7)) * (rng.random((n, 7)) < 0.2))
    s2 = sp.csr_matrix(rng.normal(size=(n, 3)) * (rng.random((n, 3)) < 0.5))
    return [s1, dense, s2]


def test_same_training_as_dense_hstack(rng):
    parts = _blocks(rng)
    bm = BlockMatrix.from_parts(parts)
    assert bm.shape == (40, 15) and len(bm.blocks) == 3
    full = bm.toarray()
    y = rng.integers(0, 3, 40)
    out = []
    for x in (full, bm):
        model = Sequential([Dense(6, "relu"), Dense(3, "softmax")], dtype="float64", seed=0)
        model.compile({"name": "adam", "lazy": True}, "sparse_categorical_crossentropy")
        model.fit(x, y, epochs=3, batch_size=8, seed=2, verbose=0)
        out.append((model.get_weights(), model.predict(x)))
    for a, b in zip(out[0][0], out[1][0]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out[0][1], out[1][1], rtol=1e-10, atol=1e-12)


def test_gradients_through_blocks(rng):
    bm = BlockMatrix.from_parts(_blocks(rng, 12))
    y = rng.integers(0, 3, 12)
    model = Sequential([Dense(4, "tanh"), Dense(3, "softmax")], dtype="float64", seed=1)
    model.compile("sgd", "sparse_categorical_crossentropy")
    assert gradcheck(model, bm, y) < 1e-6


def test_neighbouring_sparse_parts_merge_and_rows_index(rng):
    s = sp.csr_matrix(np.eye(4))
    bm = BlockMatrix.from_parts([s, s, np.ones((4, 2))])
    assert len(bm.blocks) == 2 and bm.shape == (4, 10)
    sub = bm[np.array([2, 0])]
    np.testing.assert_array_equal(sub.toarray(), bm.toarray()[[2, 0]])


def test_bad_blocks_and_nan(rng):
    with pytest.raises(ValueError, match="row counts"):
        BlockMatrix([np.zeros((3, 2)), np.zeros((4, 2))])
    bad = BlockMatrix([np.array([[np.nan, 1.0]])])
    model = Sequential([Dense(2, "softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="NaN"):
        model.fit(bad, np.array([0]), verbose=0)


def test_t_matmul_with_state_equals_dense_product(rng):
    state: dict = {}
    out = np.full((15, 4), 7.0)
    for seed in range(4):  # successive batches touch different rows
        r = np.random.default_rng(seed)
        bm = BlockMatrix.from_parts(_blocks(r, 9))
        delta = r.normal(size=(9, 4))
        bm.t_matmul(delta, out, state=state)
        np.testing.assert_allclose(out, bm.toarray().T @ delta, rtol=1e-12, atol=1e-12)


def test_t_matmul_reports_touched_rows(rng):
    state: dict = {}
    out = np.zeros((15, 4))
    for seed in range(3):
        r = np.random.default_rng(seed)
        bm = BlockMatrix.from_parts(_blocks(r, 6))
        bm.t_matmul(r.normal(size=(6, 4)), out, state=state)
        touched = state["touched"]
        assert np.all(np.diff(touched) > 0)  # sorted, unique
        assert set(range(7, 12)) <= set(touched.tolist())  # the dense block's rows
        rest = np.setdiff1d(np.arange(15), touched)
        assert np.all(out[rest] == 0)
        assert set(np.flatnonzero(out.any(axis=1)).tolist()) <= set(touched.tolist())


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_used_columns_equals_unique_and_searchsorted(rng, dtype):
    from thetanet.blockmatrix import used_columns

    for n_cols, size in ((1, 0), (1, 5), (50, 3), (50, 400), (20000, 3000), (10**6, 40)):
        indices = rng.integers(0, n_cols, size).astype(dtype)
        rows, positions = used_columns(indices, n_cols)
        expected = np.unique(indices)
        assert np.array_equal(rows, expected)
        assert np.array_equal(positions, np.searchsorted(expected, indices))
        assert rows.dtype == np.int64


def _wide(rng, n=60):
    s = sp.csr_matrix(rng.normal(size=(n, 300)) * (rng.random((n, 300)) < 0.01))
    return BlockMatrix.from_parts([s, rng.normal(size=(n, 20)), s[:, :50]])


@pytest.mark.parametrize("l2", [0.0, 1e-3])
def test_lazy_adam_row_hints_equal_scanning(rng, monkeypatch, l2):
    """The rows Dense reports (sparse columns in the batch, dense blocks) give the same
    training as lazy Adam scanning the gradient for non-zero rows."""
    bm = _wide(rng)
    y = rng.integers(0, 3, bm.shape[0])

    def train():
        model = Sequential([Dense(8, "relu", l2=l2), Dense(3, "softmax")], dtype="float64",
                           seed=0)
        model.compile({"name": "adam", "lazy": True}, "sparse_categorical_crossentropy")
        model.fit(bm, y, epochs=3, batch_size=6, seed=1, verbose=0)
        return model

    hinted = train()
    first = hinted.layers[0]
    rows = first.grad_rows()
    if l2:
        assert rows == [None, None]  # L2 gives every kernel row a gradient
    else:
        assert rows[1] is None and rows[0] is not None
        assert set(np.flatnonzero(first.d_kernel.any(axis=1)).tolist()) <= set(rows[0].tolist())
    monkeypatch.setattr(Dense, "grad_rows", lambda self: [None] * len(self.grads))
    scanned = train()
    for a, b in zip(hinted.get_weights(), scanned.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # and the same as the dense matrix of the same columns
    model = Sequential([Dense(8, "relu", l2=l2), Dense(3, "softmax")], dtype="float64", seed=0)
    model.compile({"name": "adam", "lazy": True}, "sparse_categorical_crossentropy")
    model.fit(bm.toarray(), y, epochs=3, batch_size=6, seed=1, verbose=0)
    for a, b in zip(hinted.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_dense_grad_rows_for_csr_and_dense_inputs(rng):
    x = sp.csr_matrix(np.eye(5, 80)[[0, 3, 3, 1]] * 2.0)
    layer = Dense(4)
    layer.build(80, dtype=np.dtype(np.float64), rng=rng)
    layer.forward(x, training=True)
    layer.backward(np.ones((4, 4)), grad_is_preactivation=True)
    np.testing.assert_array_equal(layer.grad_rows()[0], [0, 1, 3])
    layer.forward(x.toarray(), training=True)
    layer.backward(np.ones((4, 4)), grad_is_preactivation=True)
    assert layer.grad_rows() == [None, None]
