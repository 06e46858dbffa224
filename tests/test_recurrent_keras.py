"""Keras 3 ↔ thetanet for sequence models: a Keras Embedding + LSTM/GRU + Dense model's
``get_weights()`` loaded with ``set_weights()`` predicts the same within 1e-5 (float32), padded
inputs (mask_zero) included, and the converter round-trips it (skipped without Keras)."""


import numpy as np
import pytest

from thetanet import GRU, LSTM, Bidirectional, Dense, Embedding, Sequential, SimpleRNN

TOL = 1e-5
T, V = 7, 12

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")



def _ids():
    x = np.random.default_rng(0).integers(1, V, (6, T))
    for i, n in enumerate([7, 5, 3, 1, 6, 2]):
        x[i, n:] = 0
    return x.astype(np.int32)


def _predict(keras, kmodel, x):
    return keras.ops.convert_to_numpy(kmodel(x, training=False))


def _keras_model(keras, rnn, sequences):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((T,), dtype="int32"), keras.layers.Embedding(V, 5, mask_zero=True),
              rnn, keras.layers.Dense(4, activation="softmax")]
    kmodel = keras.Sequential(layers)
    # non-trivial biases (Keras starts them at 0, the LSTM's forget gate at 1)
    rng = np.random.default_rng(1)
    kmodel.set_weights([w + 0.3 * rng.normal(size=w.shape).astype(w.dtype) if _is_bias(w)
                        else w for w in kmodel.get_weights()])
    return kmodel


def _is_bias(w):
    return w.ndim == 1 or (w.ndim == 2 and w.shape[0] == 2)  # GRU: [b_in; b_rec]


CASES = [("LSTM", True), ("GRU", False)]


@pytest.mark.parametrize("kind, sequences", CASES)
def test_keras_weights_predict_the_same(keras, kind, sequences):
    rnn = getattr(keras.layers, kind)(6, return_sequences=sequences)
    kmodel = _keras_model(keras, rnn, sequences)
    ours = Sequential([Embedding(V, 5, mask_zero=True),
                       {"LSTM": LSTM, "GRU": GRU}[kind](6, return_sequences=sequences),
                       Dense(4, "softmax")])
    ours.build(T)
    ours.set_weights(kmodel.get_weights())
    x = _ids()
    want = _predict(keras, kmodel, x)
    got = ours.predict(x)
    assert got.dtype == np.float32 and got.shape == want.shape
    real = x != 0
    if sequences:  # Keras's mask leaves padded outputs to be ignored: compare real steps
        np.testing.assert_allclose(got[real], want[real], atol=TOL)
    else:
        np.testing.assert_allclose(got, want, atol=TOL)


@pytest.mark.parametrize("build", [
    lambda k: k.layers.LSTM(6, return_sequences=True, go_backwards=True),
    lambda k: k.layers.GRU(6, activation="relu", recurrent_activation="tanh"),
    lambda k: k.layers.SimpleRNN(6, return_sequences=True),
    lambda k: k.layers.Bidirectional(k.layers.LSTM(6, return_sequences=True)),
    lambda k: k.layers.Bidirectional(k.layers.GRU(6), merge_mode="sum"),
])
def test_converter_round_trips_sequence_models(keras, build):
    from thetanet.keras_convert import from_keras, to_keras

    kmodel = _keras_model(keras, build(keras), True)
    x = _ids()
    want = _predict(keras, kmodel, x)
    net = from_keras(kmodel)
    got = net.predict(x)
    mask = (x != 0) if got.ndim == 3 else np.ones(x.shape[0], bool)
    np.testing.assert_allclose(got[mask], want[mask], atol=TOL)
    back = to_keras(net)
    again = _predict(keras, back, x)
    np.testing.assert_allclose(again[mask], want[mask], atol=TOL)
    for a, b in zip(back.get_weights(), kmodel.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_to_keras_of_a_trained_thetanet_model(keras):
    from thetanet.keras_convert import to_keras

    rng = np.random.default_rng(2)
    x = _ids()
    y = rng.integers(0, 3, (6, T))
    net = Sequential([Embedding(V, 4, mask_zero=True), Bidirectional(GRU(3, return_sequences=True)),
                      SimpleRNN(5, return_sequences=True, activation="arctan"),
                      Dense(3, "softmax")], seed=0)
    net.compile("adam", "sparse_categorical_crossentropy")
    net.fit(x, y, epochs=3, batch_size=3, verbose=0, seed=0)
    kmodel = to_keras(net)
    real = x != 0
    np.testing.assert_allclose(_predict(keras, kmodel, x)[real], net.predict(x)[real], atol=TOL)


def test_masked_loss_is_keras_mean_over_the_real_steps(keras):
    from thetanet.keras_convert import from_keras

    kmodel = _keras_model(keras, keras.layers.LSTM(6, return_sequences=True), True)
    kmodel.compile("sgd", "sparse_categorical_crossentropy")
    x = _ids()
    y = np.random.default_rng(3).integers(0, 4, x.shape)
    net = from_keras(kmodel)
    net.compile("sgd", "sparse_categorical_crossentropy")
    want = kmodel.evaluate(x, y, batch_size=len(x), verbose=0)
    assert net.evaluate(x, y, batch_size=None) == pytest.approx(want, rel=1e-5)
