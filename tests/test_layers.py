import numpy as np
import pytest

from thetanet import Activation, Dense, Dropout, Sequential
from thetanet.gradcheck import gradcheck
from thetanet.layers import Layer, layer_from_config, register_layer

CORE_ACTIVATIONS = ["identity", "logistic", "tanh", "relu", "softmax"]


def _data(rng, n=12, d=4, k=3):
    return rng.normal(size=(n, d)), rng.integers(0, k, n)


@pytest.mark.parametrize("act", CORE_ACTIVATIONS)
def test_dense_gradients_every_core_activation(rng, act):
    x, y = _data(rng)
    model = Sequential([Dense(5, act), Dense(3, "softmax")], dtype="float64", seed=3)
    model.compile("sgd", "sparse_categorical_crossentropy")
    assert gradcheck(model, x, y) < 1e-6


@pytest.mark.parametrize("act", CORE_ACTIVATIONS)
def test_activation_layer_gradients(rng, act):
    x, y = _data(rng)
    model = Sequential([Dense(5), Activation(act), Dense(3), Activation("softmax")],
                       dtype="float64", seed=4)
    model.compile("sgd", "categorical_crossentropy")
    assert gradcheck(model, x, y) < 1e-6


def test_dropout_gradients_with_fixed_masks(rng):
    x, y = _data(rng)
    model = Sequential([Dense(6, "tanh"), Dropout(0.4), Dense(5, "relu"), Dropout(0.2),
                        Dense(3, "softmax")], dtype="float64", seed=5)
    model.compile("sgd", "sparse_categorical_crossentropy")
    assert gradcheck(model, x, y, training=True, seed=7) < 1e-6


def test_l2_gradient_and_bias_not_regularised(rng):
    x, y = _data(rng)
    model = Sequential([Dense(5, "tanh", l2=0.3), Dense(3, "softmax", l2=0.1)],
                       dtype="float64", seed=6)
    model.compile("sgd", "sparse_categorical_crossentropy")
    assert gradcheck(model, x, y) < 1e-6
    # the penalty involves kernels only: changing a bias leaves it unchanged
    d = model.layers[0]
    before = d.penalty()
    d.bias += 5.0
    assert d.penalty() == before
    assert before == pytest.approx(0.5 * 0.3 * np.sum(d.kernel ** 2))


def test_no_bias_gradients(rng):
    x, y = _data(rng)
    model = Sequential([Dense(5, "tanh", use_bias=False), Dense(3, "softmax")],
                       dtype="float64", seed=2)
    model.compile("sgd", "sparse_categorical_crossentropy")
    assert len(model.params) == 3
    assert gradcheck(model, x, y) < 1e-6


def test_theta_is_the_lectures_matrix(rng):
    d = Dense(3, "logistic")
    d.build(2, dtype=np.float64, rng=rng)
    theta = d.theta
    assert theta.shape == (3, 3)  # s_{j+1} × (s_j + 1)
    np.testing.assert_array_equal(theta[:, 0], d.bias)
    np.testing.assert_array_equal(theta[:, 1:], d.kernel.T)
    # z = Θ [1; a] for one example
    a = rng.normal(size=2)
    z_lecture = theta @ np.concatenate([[1.0], a])
    np.testing.assert_allclose(d.preactivation(a[None, :])[0], z_lecture)
    new = np.arange(9.0).reshape(3, 3)
    d.theta = new
    np.testing.assert_array_equal(d.theta, new)
    with pytest.raises(ValueError, match="shape"):
        d.theta = np.zeros((3, 2))


def test_dense_accepts_csr_input_same_result(rng):
    sparse = pytest.importorskip("scipy.sparse")
    x = rng.normal(size=(30, 8)) * (rng.random((30, 8)) < 0.3)
    y = rng.integers(0, 3, 30)
    results = []
    for xin in (x, sparse.csr_matrix(x)):
        model = Sequential([Dense(6, "relu"), Dense(3, "softmax")], dtype="float64", seed=0)
        model.compile("sgd", "sparse_categorical_crossentropy")
        model.fit(xin, y, epochs=3, batch_size=8, seed=1, verbose=0)
        results.append((model.get_weights(), model.predict(xin)))
    for a, b in zip(results[0][0], results[1][0]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, atol=1e-12)


def test_dropout_inverted_scaling_and_inference_identity(rng):
    layer = Dropout(0.25)
    layer.build(1000, dtype=np.float32, rng=rng)
    layer.rng = np.random.default_rng(0)
    x = np.ones((50, 1000), np.float32)
    out = layer.forward(x, training=True)
    kept = out != 0
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[kept], 1 / 0.75, rtol=1e-6)
    assert abs(kept.mean() - 0.75) < 0.01
    assert np.array_equal(layer.forward(x, training=False), x)


def test_dropout_of_sparse_and_block_inputs(rng):
    sp = pytest.importorskip("scipy.sparse")
    from thetanet.blockmatrix import BlockMatrix

    layer = Dropout(0.25)
    layer.build(400, dtype=np.float32, rng=rng)
    layer.rng = np.random.default_rng(0)
    x = sp.random(200, 300, density=0.2, format="csr", dtype=np.float32, random_state=1)
    x.data[:] = 1.0
    dense = np.ones((200, 50), np.float32)
    bm = BlockMatrix([x, dense, dense.copy()])
    out = layer.forward(bm, training=True)
    assert isinstance(out, BlockMatrix) and out.shape == bm.shape
    s_out, d1, d2 = out.blocks
    assert sp.issparse(s_out) and s_out.dtype == np.float32
    np.testing.assert_allclose(s_out.data, 1 / 0.75, rtol=1e-6)  # dropped entries are gone
    assert set(zip(*s_out.nonzero())) <= set(zip(*x.nonzero()))
    assert abs(s_out.nnz / x.nnz - 0.75) < 0.02
    for d in (d1, d2):  # each dense block its own mask (no shared buffer)
        assert d.dtype == np.float32 and abs((d != 0).mean() - 0.75) < 0.02
    assert not np.array_equal(d1 != 0, d2 != 0)
    assert np.all(x.data == 1.0) and np.all(dense == 1.0)  # the input is untouched
    assert layer.forward(bm, training=False) is bm
    assert layer.backward(None) is None
    with pytest.raises(ValueError, match="no gradient back"):
        layer.forward(x, training=True)
        layer.backward(np.ones((200, 300), np.float32))
    # as the input layer of a model: trains, and the first Dense computes no input gradient
    y = rng.integers(0, 3, 200)
    model = Sequential([Dropout(0.2), Dense(3, "softmax")], seed=0)
    model.compile({"name": "adam", "lazy": True}, "sparse_categorical_crossentropy")
    hist = model.fit(BlockMatrix.from_parts([x, dense]), y, epochs=3, batch_size=32, verbose=0)
    assert np.all(np.isfinite(hist.history["loss"]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_of_a_dense_block_equals_its_reference(dtype):
    # the block path multiplies by the kept mask, then by 1/keep: the same values as
    # b·where(kept, 1/keep, 0) from the same draws (the recipes' numbers depend on it)
    from thetanet.blockmatrix import BlockMatrix

    b = np.random.default_rng(3).normal(size=(64, 37)).astype(dtype)
    layer = Dropout(0.2724)
    layer.build(37, dtype=dtype, rng=np.random.default_rng(0))
    layer.rng = np.random.default_rng(11)
    (out,) = layer.forward(BlockMatrix([b]), training=True).blocks
    keep = 1 - 0.2724
    kept = np.random.default_rng(11).random(b.shape) < keep
    ref = b * np.where(kept, 1.0 / keep, 0.0).astype(dtype)
    assert out.dtype == dtype
    assert np.array_equal(out, ref) and np.array_equal(out != 0, kept)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, "0.5"])
def test_dropout_rejects_bad_rate(bad):
    with pytest.raises(ValueError, match="rate"):
        Dropout(bad)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_dense_rejects_bad_units(bad):
    with pytest.raises(ValueError, match="units"):
        Dense(bad)


def test_unknown_activation_named():
    with pytest.raises(ValueError, match="unknown activation 'reluu'"):
        Dense(3, "reluu")


def test_layer_config_round_trip():
    for layer in (Dense(4, "tanh", l2=0.5, use_bias=False, kernel_initializer="he_normal"),
                  Dropout(0.3), Activation("softmax")):
        cfg = {"class_name": type(layer).__name__, "config": layer.get_config()}
        again = layer_from_config(cfg)
        assert again.get_config() == layer.get_config()


def test_float32_preserved(rng):
    model = Sequential([Dense(5, "logistic"), Dropout(0.1), Dense(3, "softmax")], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = _data(rng)
    model.fit(x, y, epochs=2, batch_size=4, verbose=0, seed=0)
    assert all(p.dtype == np.float32 for p in model.params)
    assert model.predict(x).dtype == np.float32


# -- the layer contract: declared capabilities and shapes ----------------------------------------
def test_layers_declare_what_they_can_do():
    from thetanet import Maxout

    dense, dense_l2, drop = Dense(3, "softmax"), Dense(3, "relu", l2=0.1), Dropout(0.5)
    act, maxout, maxout_l2 = Activation("tanh"), Maxout(2), Maxout(2, l2=0.1)
    assert drop.stochastic and not any(ly.stochastic for ly in (dense, act, maxout))
    assert all(ly.linear_backward for ly in (dense, drop, act, maxout))
    assert not dense_l2.linear_backward and not maxout_l2.linear_backward
    assert dense_l2.has_penalty and maxout_l2.has_penalty
    assert not any(ly.has_penalty for ly in (dense, drop, act, maxout))
    assert (dense.output_activation, act.output_activation) == ("softmax", "tanh")
    assert drop.output_activation is None and maxout.output_activation is None
    assert dense.fused_output and not act.fused_output and not drop.fused_output
    base = Layer()  # the defaults a new layer starts from
    assert (base.stochastic, base.linear_backward, base.has_penalty, base.penalty(),
            base.output_activation, base.fused_output) == (False, False, False, 0.0, None, False)


def test_build_takes_a_shape_and_returns_the_output_shape(rng):
    d = Dense(4)
    assert d.build((3,), dtype=np.float32, rng=rng) == (4,)
    assert (d.input_shape, d.output_shape, d.input_dim, d.output_dim) == ((3,), (4,), 3, 4)
    assert Dense(4).build(3, dtype=np.float32, rng=rng) == (4,)  # an int is a flat width
    act = Activation("relu")
    assert act.build((5, 5, 2), dtype=np.float32, rng=rng) == (5, 5, 2)
    assert act.output_dim == 50
    assert Dense(4).build((5, 3), dtype=np.float32, rng=rng) == (5, 4)  # per step (sequences)
    with pytest.raises(ValueError, match="Dense needs flat inputs"):
        Dense(4).build((5, 5, 2), dtype=np.float32, rng=rng)


@register_layer
class _Mean(Layer):
    """A test layer taking (m, h, w) inputs: the mean over h, (m, w)."""

    linear_backward = True

    def build(self, input_shape, *, dtype, rng):
        h, w = input_shape
        self._set_shapes((h, w), (w,), dtype)
        return (w,)

    def forward(self, x, training=False):
        return x.mean(axis=1)

    def backward(self, grad, *, grad_is_preactivation=False):
        if not self.needs_input_grad:
            return None
        h = self.input_shape[0]
        return np.repeat(grad[:, None, :] / h, h, axis=1)


def test_model_inputs_with_more_axes_when_the_first_layer_takes_them(rng, tmp_path):
    from thetanet import load_model

    x = rng.normal(size=(16, 5, 3))
    y = rng.integers(0, 2, 16)
    model = Sequential([_Mean(), Dense(4, "tanh"), Dense(2, "softmax")], dtype="float64",
                       seed=1)
    model.compile("sgd", "sparse_categorical_crossentropy")
    assert gradcheck(model, x, y) < 1e-6
    model.fit(x, y, epochs=2, batch_size=4, verbose=0, seed=0)
    assert model.input_shape == (5, 3) and model.input_dim is None
    assert model.get_config()["input_shape"] == [5, 3]
    with pytest.raises(ValueError, match=r"shape \(5, 4\) but the model expects \(5, 3\)"):
        model.predict(np.zeros((2, 5, 4)))
    model.save(tmp_path / "m")
    np.testing.assert_array_equal(load_model(tmp_path / "m").predict(x), model.predict(x))
    flat = Sequential([Dense(2)])
    with pytest.raises(ValueError, match="Dense needs flat inputs"):
        flat.build((5, 3, 2))
