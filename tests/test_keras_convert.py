"""Keras 3 ↔ thetanet round trips: the same predictions within 1e-5 (skipped without Keras)."""


import numpy as np
import pytest

from thetanet import (
    Activation,
    AveragePool2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Maxout,
    Sequential,
    activations,
)

TOL = 1e-5

# Keras's torch backend trips NumPy 2's __array__(copy=...) deprecation internally.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")



def keras_predict(keras, kmodel, x):
    return keras.ops.convert_to_numpy(kmodel(x, training=False))


def test_keras_model_to_thetanet_and_back(keras, rng):
    from thetanet.keras_convert import from_keras, to_keras

    layers = keras.layers
    kmodel = keras.Sequential([
        keras.Input(shape=(6,)),
        layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.L2(0.01)),
        layers.Dropout(0.3),
        layers.Dense(8, use_bias=False),
        layers.Activation("tanh"),
        layers.Dense(8, activation="sigmoid"),
        layers.Dense(4, activation="softmax"),
    ])
    x = rng.normal(0.0, 2.0, (300, 6)).astype(np.float32)
    want = keras_predict(keras, kmodel, x)
    net = from_keras(kmodel)
    assert [type(layer).__name__ for layer in net.layers] == [
        "Dense", "Dropout", "Dense", "Activation", "Dense", "Dense"]
    assert net.layers[0].l2 == pytest.approx(0.02) and not net.layers[2].use_bias
    assert net.layers[4].activation.name == "logistic"
    assert np.abs(net.predict(x) - want).max() <= TOL
    back = to_keras(net)
    assert np.abs(keras_predict(keras, back, x) - want).max() <= TOL
    for a, b in zip(kmodel.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)


FIXED = [(n, {}) for n in activations.names() if not activations.get(n).learnable] + [
    ("soft_exponential", {"alpha": 0.5}), ("soft_exponential", {"alpha": -0.5})]


@pytest.mark.parametrize("name, kwargs", FIXED, ids=[f"{n}{kw}" for n, kw in FIXED])
def test_thetanet_activation_round_trip(keras, rng, name, kwargs):
    from thetanet.keras_convert import from_keras, to_keras

    model = Sequential([Dense(16, activations.get(name, **kwargs)), Dropout(0.2),
                        Dense(6), Activation(activations.get(name, **kwargs)),
                        Dense(4, "softmax")], seed=0)
    model.build(5)
    x = rng.normal(0.0, 2.0, (300, 5)).astype(np.float32)
    kmodel = to_keras(model)
    assert np.abs(keras_predict(keras, kmodel, x) - model.predict(x)).max() <= TOL
    again = from_keras(kmodel)
    assert again.get_config()["layers"][0]["config"]["activation"] == \
        model.get_config()["layers"][0]["config"]["activation"]
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


def test_keras_conv_net_to_thetanet_and_back(keras, rng):
    """Conv2D (even kernels with "same": the odd pixel's side matters), both poolings with
    padding, Flatten's column order: the same predictions both ways, weights bit for bit."""
    from thetanet.keras_convert import from_keras, to_keras

    layers = keras.layers
    kmodel = keras.Sequential([
        keras.Input(shape=(11, 10, 2)),
        layers.Conv2D(4, (2, 4), strides=(2, 1), padding="same", activation="relu",
                      kernel_regularizer=keras.regularizers.L2(0.01)),
        layers.MaxPooling2D(3, strides=2, padding="same"),
        layers.Conv2D(5, 3, padding="same", use_bias=False),
        layers.Activation("tanh"),
        layers.AveragePooling2D(2, padding="same"),
        layers.Flatten(),
        layers.Dropout(0.2),
        layers.Dense(3, activation="softmax"),
    ])
    for w in kmodel.weights:  # non-zero biases
        w.assign(rng.normal(0.0, 0.5, tuple(w.shape)).astype(np.float32))
    x = rng.normal(0.0, 1.0, (50, 11, 10, 2)).astype(np.float32)
    want = keras_predict(keras, kmodel, x)
    net = from_keras(kmodel)
    assert [type(layer).__name__ for layer in net.layers] == [
        "Conv2D", "MaxPool2D", "Conv2D", "Activation", "AveragePool2D", "Flatten", "Dropout",
        "Dense"]
    assert net.input_shape == (11, 10, 2) and net.layers[0].l2 == pytest.approx(0.02)
    assert not net.layers[2].use_bias and net.layers[1].strides == (2, 2)
    assert np.abs(net.predict(x) - want).max() <= TOL
    back = to_keras(net)
    assert np.abs(keras_predict(keras, back, x) - want).max() <= TOL
    for a, b in zip(kmodel.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)
    # thetanet-made: a sinc conv and a PReLU-free head go out and come back unchanged
    model = Sequential([Conv2D(3, 3, activation="sinc"), AveragePool2D(2), Flatten(),
                        Dense(2, "softmax")], seed=0)
    model.build((8, 8, 1))
    again = from_keras(to_keras(model))
    np.testing.assert_array_equal(again.predict(x[:, :8, :8, :1]),
                                  model.predict(x[:, :8, :8, :1]))
    dilated = keras.Sequential([keras.Input(shape=(8, 8, 1)),
                                layers.Conv2D(2, 3, dilation_rate=2)])
    with pytest.raises(ValueError, match="dilated"):
        from_keras(dilated)


def test_unsupported_pieces_raise(keras):
    from thetanet.keras_convert import from_keras, to_keras

    for layers in ([Dense(4, "prelu"), Dense(2, "softmax")], [Maxout(3), Dense(2, "softmax")],
                   [Dense(4), Activation("apl"), Dense(2, "softmax")]):
        model = Sequential(layers, seed=0)
        model.build(3)
        with pytest.raises(ValueError):
            to_keras(model)
    gelu = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(2, activation="gelu")])
    with pytest.raises(ValueError, match="gelu"):
        from_keras(gelu)
    norm = keras.Sequential([keras.Input(shape=(3,)), keras.layers.BatchNormalization()])
    with pytest.raises(ValueError, match="BatchNormalization"):
        from_keras(norm)
