"""Recurrent layers: gradient checks (float64 central differences) of every new layer, with
masks, return_sequences on and off, go_backwards, Bidirectional and stacked LSTMs; masking
invariance; Embedding's lazy rows; dtypes, saving, checkpoints, summary and errors."""

import numpy as np
import pytest

from thetanet import (
    GRU,
    LSTM,
    Bidirectional,
    Dense,
    Dropout,
    Embedding,
    Masking,
    Sequential,
    SimpleRNN,
    load_model,
)
from thetanet.gradcheck import gradcheck, relative_error
from thetanet.layers import ParameterBudgetError

RNNS = [SimpleRNN, LSTM, GRU]


def _ids(rng, n=5, steps=6, vocab=7):
    """Ids with post-padding (0) of several lengths, one sequence entirely real."""
    x = rng.integers(1, vocab, (n, steps))
    for i, length in enumerate([steps, 4, 2, 5, 1][:n]):
        x[i, length:] = 0
    return x


def _model(layers, loss="sparse_categorical_crossentropy", dtype="float64"):
    model = Sequential(layers, dtype=dtype, seed=1)
    model.compile("sgd", loss)
    return model


@pytest.mark.parametrize("cls", RNNS)
@pytest.mark.parametrize("sequences", [True, False])
@pytest.mark.parametrize("backwards", [False, True])
def test_gradients_with_masking(cls, sequences, backwards):
    rng = np.random.default_rng(0)
    x = _ids(rng)
    y = rng.integers(0, 4, (5, 6)) if sequences else rng.integers(0, 4, 5)
    model = _model([Embedding(7, 3, mask_zero=True),
                    cls(4, return_sequences=sequences, go_backwards=backwards),
                    Dense(4, "softmax")])
    assert gradcheck(model, x, y) < 1e-5


@pytest.mark.parametrize("layer", [
    SimpleRNN(3, activation="bent_identity", return_sequences=True),
    LSTM(3, activation="arctan", recurrent_activation="softplus", return_sequences=True),
    GRU(3, activation="sinusoid", recurrent_activation="arctan", return_sequences=True),
    LSTM(3, use_bias=False, return_sequences=True),
])
def test_gradients_with_other_activations_and_an_explicit_mask(layer):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5, 2))
    x[1, 3:] = 0  # padded steps: every feature equals the mask value
    x[2, :2] = 0  # pre-padding too
    y = rng.normal(size=(4, 5, 2))
    model = _model([Masking(0.0), layer, Dense(2)], loss="mse")
    assert gradcheck(model, x, y) < 1e-5


@pytest.mark.parametrize("merge", ["concat", "sum", "ave"])
def test_bidirectional_gradients(merge):
    rng = np.random.default_rng(2)
    x = _ids(rng)
    y = rng.integers(0, 3, (5, 6))
    model = _model([Embedding(7, 3, mask_zero=True),
                    Bidirectional(GRU(3, return_sequences=True), merge), Dense(3, "softmax")])
    assert gradcheck(model, x, y) < 1e-5
    assert model.layers[1].output_shape == (6, 6 if merge == "concat" else 3)


def test_stacked_lstm_gradients():
    rng = np.random.default_rng(3)
    x = _ids(rng)
    y = rng.integers(0, 3, 5)
    model = _model([Embedding(7, 3, mask_zero=True), LSTM(3, return_sequences=True),
                    LSTM(4, go_backwards=True), Dense(3, "softmax")])
    assert gradcheck(model, x, y) < 1e-5


def _layer_loss(layer, x, mask, w, init):
    out = layer.forward(x, True, mask=mask, initial_state=init)
    return sum(float(np.sum(o * wi)) for o, wi in zip(out, w)), out


@pytest.mark.parametrize("cls", RNNS)
def test_return_state_and_initial_state_gradients(cls):
    """J = Σ w·[output, final states]: backward's ∂J/∂x and ∂J/∂(initial states) against
    central differences (what a graph model wiring states needs)."""
    rng = np.random.default_rng(4)
    layer = cls(3, return_sequences=True, return_state=True)
    layer.build((4, 2), dtype=np.float64, rng=rng)
    x = rng.normal(size=(2, 4, 2))
    mask = np.array([[1, 1, 1, 0], [1, 0, 1, 1]], bool)
    init = [rng.normal(size=(2, 3)) for _ in layer.state_names]
    _, out = _layer_loss(layer, x, mask, [np.ones(1)] * 3, init)
    w = [rng.normal(size=o.shape) for o in out]
    _layer_loss(layer, x, mask, w, init)
    dx = layer.backward(w)
    for arr, got in [(x, dx), *zip(init, layer.d_initial_state)]:
        num = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            orig = arr[i]
            arr[i] = orig + 1e-6
            jp = _layer_loss(layer, x, mask, w, init)[0]
            arr[i] = orig - 1e-6
            jm = _layer_loss(layer, x, mask, w, init)[0]
            arr[i] = orig
            num[i] = (jp - jm) / 2e-6
        assert relative_error(num, got) < 1e-6
    assert not np.any(dx[0, 3]) and not np.any(dx[1, 1])  # padded steps get no δ


@pytest.mark.parametrize("cls", RNNS)
def test_padded_batch_equals_each_sequence_alone(cls):
    """Outputs at the real steps and ∂J/∂Θ of a padded batch are those of its sequences run
    one by one (each in a model of its own length, same weights); J weighs each sequence by
    its number of real steps."""
    rng = np.random.default_rng(5)
    x = _ids(rng)
    y = rng.integers(0, 4, (5, 6))
    lengths = (x != 0).sum(axis=1)

    def make(steps):
        model = _model([Embedding(7, 3, mask_zero=True), cls(4, return_sequences=True),
                        Dense(4, "softmax")])
        model.build(steps)
        return model

    batch = make(6)
    weights = batch.get_weights()
    loss = batch.forward_backward(x, y)[0]
    probs = batch.predict(x)
    grads = [g.copy() for g in batch.grads]
    want_loss, want_grads = 0.0, [np.zeros_like(g) for g in grads]
    for i, n in enumerate(lengths):
        alone = make(int(n))
        alone.set_weights(weights)
        np.testing.assert_allclose(alone.predict(x[i:i + 1, :n])[0], probs[i, :n], atol=1e-12)
        share = n / lengths.sum()
        want_loss += share * alone.forward_backward(x[i:i + 1, :n], y[i:i + 1, :n])[0]
        for w, g in zip(want_grads, alone.grads):
            w += share * g
    assert loss == pytest.approx(want_loss, rel=1e-12)
    for g, w in zip(grads, want_grads):
        np.testing.assert_allclose(g, w, atol=1e-12)


def test_embedding_gradient_touches_only_the_rows_of_the_batch():
    rng = np.random.default_rng(6)
    model = Sequential([Embedding(200, 4), GRU(3), Dense(2, "softmax")], seed=0)
    model.compile({"name": "adam", "learning_rate": 0.1, "lazy": True},
                  "sparse_categorical_crossentropy")
    first, second = rng.integers(0, 10, (8, 5)), rng.integers(20, 30, (8, 5))
    y = rng.integers(0, 2, 8)
    model.train_on_batch(first, y)
    emb = model.layers[0]
    before = emb.embeddings.copy()
    model.train_on_batch(second, y)
    rows = emb.grad_rows()[0]
    np.testing.assert_array_equal(rows, np.unique(second))
    others = np.setdiff1d(np.arange(200), rows)
    assert not np.any(emb.d_embeddings[others])  # the first batch's rows were zeroed
    np.testing.assert_array_equal(emb.embeddings[others], before[others])  # lazy: untouched
    assert np.all(np.any(emb.embeddings[rows] != before[rows], axis=1))
    counts = np.zeros(200)
    np.add.at(counts, second.ravel(), 1)
    assert np.all(counts[rows] > 0)


def test_dtypes_default_float32_and_float64_on_request():
    x = np.array([[1, 2, 0]])
    for dtype in ("float32", "float64"):
        model = Sequential([Embedding(5, 2, mask_zero=True),
                            Bidirectional(LSTM(3, return_sequences=True)), Dense(2)],
                           **({} if dtype == "float32" else {"dtype": dtype}), seed=0)
        model.build(3)
        assert {p.dtype for p in model.params} == {np.dtype(dtype)}
        assert model.predict(x).dtype == np.dtype(dtype)


def test_initialisers_glorot_orthogonal_forget_bias_and_seeded():
    def weights(seed):
        model = Sequential([LSTM(8)], seed=seed)
        model.build((3, 8))
        return model.layers[0]

    layer = weights(0)
    u = layer.recurrent_kernel.astype(np.float64)
    np.testing.assert_allclose(u @ u.T, np.eye(8), atol=1e-5)  # orthonormal rows
    assert np.abs(layer.kernel).max() <= np.sqrt(6 / (8 + 32))
    np.testing.assert_array_equal(layer.bias, np.r_[np.zeros(8), np.ones(8), np.zeros(16)])
    np.testing.assert_array_equal(weights(0).kernel, layer.kernel)
    assert not np.array_equal(weights(1).kernel, layer.kernel)


def test_save_load_checkpoint_resume_and_summary(tmp_path):
    rng = np.random.default_rng(7)
    x = _ids(rng, n=5, steps=6, vocab=9).repeat(6, axis=0)
    y = rng.integers(0, 5, (30, 6))

    def make():
        model = Sequential([Embedding(9, 4, mask_zero=True),
                            Bidirectional(GRU(5, return_sequences=True)),
                            LSTM(6, return_sequences=True, go_backwards=True),
                            SimpleRNN(3, return_sequences=True), Dense(5, "softmax")], seed=3)
        model.compile({"name": "adam", "learning_rate": 0.01},
                      "sparse_categorical_crossentropy")
        return model

    model = make()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=1)
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    assert again.evaluate(x, y) == pytest.approx(model.evaluate(x, y))
    whole = make()
    whole.fit(x, y, epochs=3, batch_size=8, verbose=0, seed=1, checkpoint=tmp_path / "a")
    part = make()
    part.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=1, checkpoint=tmp_path / "b")
    resumed = make()
    resumed.fit(x, y, epochs=3, batch_size=8, verbose=0, seed=1, checkpoint=tmp_path / "b",
                resume=True)
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    text = model.summary(print_fn=None)
    for shape in ("6×4", "6×10", "6×6", "6×3", "6×5"):
        assert shape in text


def test_the_loss_counts_only_real_steps():
    rng = np.random.default_rng(8)
    x = _ids(rng)
    y = rng.integers(0, 4, (5, 6))
    model = _model([Embedding(7, 3, mask_zero=True), LSTM(4, return_sequences=True),
                    Dense(4, "softmax")])
    loss = model.evaluate(x, y, batch_size=None)
    probs = model.predict(x)
    real = x != 0
    picked = np.take_along_axis(probs, y[..., None], axis=2)[..., 0]
    assert loss == pytest.approx(-np.log(picked[real]).mean(), rel=1e-10)
    y2 = y.copy()
    y2[~real] = (y2[~real] + 1) % 4  # labels of padded steps do not matter
    assert model.forward_backward(x, y)[0] == pytest.approx(model.forward_backward(x, y2)[0])


def test_errors():
    with pytest.raises(ValueError, match="reset_after=True only"):
        GRU(3, reset_after=False)
    with pytest.raises(ValueError, match="fixed elementwise activation"):
        LSTM(3, recurrent_activation="prelu")
    with pytest.raises(ValueError, match="fixed elementwise activation"):
        SimpleRNN(3, activation="softmax")
    with pytest.raises(ValueError, match="wraps a recurrent layer"):
        Bidirectional(Dense(3))
    model = Sequential([Embedding(5, 2), LSTM(2)])
    model.build(3)
    with pytest.raises(ValueError, match="out of range for input_dim=5"):
        model.predict(np.array([[1, 5, 0]]))
    with pytest.raises(ValueError, match="integer ids"):
        model.predict(np.array([[1, 0.5, 0]]))
    with pytest.raises(ValueError, match="needs sequences"):
        Sequential([LSTM(2)]).build(4)
    with pytest.raises(ParameterBudgetError, match="Embedding"):
        Sequential([Embedding(10**6, 200)]).build(3)  # refused before allocating
    with pytest.raises(ParameterBudgetError, match="LSTM"):
        Sequential([LSTM(6000)]).build((3, 10))
    seq = Sequential([Embedding(5, 2), LSTM(2, return_sequences=True), Dense(2)])
    seq.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"sequences of shape \(3, 2\)"):
        seq.fit(np.ones((2, 3)), np.ones((2, 4, 2)), verbose=0)
    seq.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    with pytest.raises(ValueError, match="metrics are not supported on sequence outputs"):
        seq.fit(np.ones((2, 3)), np.ones((2, 3)), verbose=0)
    seq.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="integer labels"):
        seq.fit(np.ones((2, 3)), np.ones((2, 3, 2)), verbose=0)


def test_dense_and_dropout_between_recurrent_layers_apply_per_step():
    """A hidden Dense on (batch, T, d) and a dropout keep the mask for the LSTM above them;
    checked with dropout active (the same masks for every evaluation)."""
    rng = np.random.default_rng(9)
    x = _ids(rng)
    y = rng.integers(0, 3, (5, 6))
    model = _model([Embedding(7, 3, mask_zero=True), Dense(4, "tanh"), Dropout(0.3),
                    LSTM(3, return_sequences=True), Dense(3, "softmax")])
    assert gradcheck(model, x, y, training=True) < 1e-5
    assert model.layers[1].output_shape == (6, 4)
