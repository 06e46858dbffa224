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
