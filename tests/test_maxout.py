"""Maxout(units, pieces): k affine pieces per unit, output the max, gradient to the winner."""

import numpy as np
import pytest

from thetanet import Dense, Dropout, Sequential, load_model
from thetanet.gradcheck import gradcheck
from thetanet.layers import Maxout, layer_from_config

X_XOR = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
Y_XOR = np.array([0, 1, 1, 0], float)


def test_forward_is_max_over_pieces(rng):
    layer = Maxout(3, 4)
    layer.build(5, dtype=np.float64, rng=rng)
    layer.bias[...] = rng.normal(size=12)
    x = rng.normal(size=(7, 5))
    out = layer.forward(x)
    for j in range(3):
        pieces = [x @ layer.kernel[:, j * 4 + k] + layer.bias[j * 4 + k] for k in range(4)]
        np.testing.assert_allclose(out[:, j], np.max(pieces, axis=0))
    assert out.shape == (7, 3) and layer.output_dim == 3 and layer.count_params() == 5 * 12 + 12


def test_gradient_goes_to_the_winning_piece_only(rng):
    layer = Maxout(2, 3)
    layer.build(4, dtype=np.float64, rng=rng)
    x = rng.normal(size=(1, 4))
    layer.forward(x, training=True)
    z = (x @ layer.kernel + layer.bias).reshape(2, 3)
    dx = layer.backward(np.array([[1.0, 2.0]]))
    for j, g in enumerate((1.0, 2.0)):
        win = int(np.argmax(z[j]))
        for k in range(3):
            col = layer.d_kernel[:, j * 3 + k]
            np.testing.assert_allclose(col, x[0] * g if k == win else 0.0)
            assert layer.d_bias[j * 3 + k] == (g if k == win else 0.0)
    want = sum(g * layer.kernel[:, j * 3 + int(np.argmax(z[j]))] for j, g in enumerate((1, 2)))
    np.testing.assert_allclose(dx[0], want)


@pytest.mark.parametrize("kwargs", [{}, {"l2": 0.1}, {"use_bias": False}])
def test_model_level_gradcheck(rng, kwargs):
    x, y = rng.normal(size=(12, 4)), rng.integers(0, 3, 12)
    model = Sequential([Maxout(5, 3, **kwargs), Maxout(4, 2, **kwargs), Dense(3, "softmax")],
                       dtype="float64", seed=1)
    model.compile("sgd", "sparse_categorical_crossentropy")
    assert gradcheck(model, x, y) < 1e-6
    with_dropout = Sequential([Maxout(5, 2, **kwargs), Dropout(0.3), Dense(3, "softmax")],
                              dtype="float64", seed=2)
    with_dropout.compile("sgd", "sparse_categorical_crossentropy")
    assert gradcheck(with_dropout, x, y, training=True, seed=3) < 1e-6


def test_first_layer_skips_input_gradient(rng):
    model = Sequential([Maxout(3, 2), Dense(2, "softmax")], dtype="float64", seed=0)
    model.build(4)
    first = model.layers[0]
    assert first.needs_input_grad is False
    first.forward(rng.normal(size=(2, 4)), training=True)
    assert first.backward(np.ones((2, 3))) is None


def test_one_piece_is_a_linear_dense_layer(rng):
    x = rng.normal(size=(6, 4))
    m1 = Sequential([Maxout(3, 1)], dtype="float64", seed=5).build(4)
    m2 = Sequential([Dense(3)], dtype="float64", seed=5).build(4)
    np.testing.assert_allclose(m1.predict(x), m2.predict(x))


def test_xor():
    """Two maxout units of two pieces: |x1 − x2| is one of them, so XOR is easy."""
    model = Sequential([Maxout(2, 2), Dense(1, "logistic")], seed=0)
    model.compile({"name": "adam", "learning_rate": 0.05}, "binary_crossentropy")
    model.fit(X_XOR, Y_XOR, epochs=400, batch_size=None, verbose=0, seed=0)
    np.testing.assert_array_equal(model.predict_classes(X_XOR).ravel(), Y_XOR)


def test_digits_and_save_load(tmp_path):
    sk = pytest.importorskip("sklearn.datasets")
    d = sk.load_digits()
    x, y = (d.data / 16).astype(np.float32), d.target
    perm = np.random.default_rng(0).permutation(len(y))
    x, y = x[perm], y[perm]
    model = Sequential([Maxout(32, 2), Dropout(0.1), Maxout(16, 3), Dense(10, "softmax")],
                       seed=0)
    model.compile({"name": "adam", "learning_rate": 0.01}, "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x[:1300], y[:1300], epochs=8, batch_size=32, verbose=0, seed=0)
    assert model.evaluate(x[1300:], y[1300:])[1] > 0.95
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert [type(la).__name__ for la in again.layers] == ["Maxout", "Dropout", "Maxout", "Dense"]
    assert again.layers[2].pieces == 3 and again.layers[2].kernel.shape == (32, 48)
    np.testing.assert_array_equal(again.predict(x[1300:]), model.predict(x[1300:]))


def test_config_round_trip_and_bad_arguments():
    layer = Maxout(4, 3, l2=0.01, use_bias=False, input_dim=7, name="mx")
    again = layer_from_config({"class_name": "Maxout", "config": layer.get_config()})
    assert again.get_config() == layer.get_config()
    for bad in ({"units": 0}, {"units": 2, "pieces": 0}, {"units": 2, "pieces": True},
                {"units": 2, "l2": -1.0}):
        with pytest.raises(ValueError):
            Maxout(**bad)
    with pytest.raises(ValueError, match="input_dim"):
        Sequential([Maxout(2, input_dim=3)]).build(4)
