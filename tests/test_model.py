import warnings

import numpy as np
import pytest

from thetanet import Dense, Dropout, EarlyStopping, Sequential, one_hot
from thetanet.model import DivergenceWarning


def separable(rng, n=120):
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return x, y


def make(seed=0, **kw):
    model = Sequential([Dense(8, "tanh"), Dense(2, "softmax")], seed=seed, **kw)
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("batch_size", [1, 32, None])
def test_fit_reduces_loss_online_minibatch_full(rng, batch_size):
    x, y = separable(rng)
    model = make()
    model.optimizer.learning_rate = 0.5 if batch_size is None else 0.1
    hist = model.fit(x, y, epochs=20, batch_size=batch_size, seed=1, verbose=0)
    loss = hist.history["loss"]
    assert loss[-1] < 0.5 * loss[0]
    assert hist.history["accuracy"][-1] > 0.9


def test_same_seed_bit_identical(rng):
    x, y = separable(rng)
    weights = []
    for _ in range(2):
        model = Sequential([Dense(8, "relu"), Dropout(0.3), Dense(2, "softmax")], seed=4)
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x, y, epochs=3, batch_size=16, seed=9, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        assert np.array_equal(a, b)


def test_different_seed_differs(rng):
    x, y = separable(rng)
    ws = []
    for s in (1, 2):
        m = make(seed=0)
        m.fit(x, y, epochs=1, batch_size=16, seed=s, verbose=0)
        ws.append(m.get_weights()[0])
    assert not np.array_equal(*ws)


def test_train_on_batch_is_exactly_one_update(rng):
    x, y = separable(rng, 10)
    model = make()
    w0 = model.get_weights() if model.built else None
    assert w0 is None
    model.build(2)
    w0 = model.get_weights()
    loss, _ = model.forward_backward(x, y)
    grads = [g.copy() for g in model.grads]
    got = model.train_on_batch(x, y)
    assert got == pytest.approx(loss)
    for p0, g, p in zip(w0, grads, model.get_weights()):
        np.testing.assert_allclose(p, p0 - 0.01 * g, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("init", ["zeros", "ones"])
def test_symmetric_init_keeps_hidden_units_identical(rng, init):
    x, y = separable(rng)
    model = Sequential([Dense(4, "logistic", kernel_initializer=init, bias_initializer=init),
                        Dense(2, "softmax", kernel_initializer=init)], dtype="float64")
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.optimizer.learning_rate = 0.5
    model.fit(x, y, epochs=5, batch_size=8, seed=0, verbose=0)
    kernel = model.layers[0].kernel
    # every hidden unit computes the same function: all columns equal
    assert np.allclose(kernel, kernel[:, :1])
    assert np.allclose(model.layers[1].kernel, model.layers[1].kernel[:1, :])


def test_random_init_breaks_symmetry(rng):
    x, y = separable(rng)
    model = Sequential([Dense(4, "logistic", kernel_initializer="uniform_epsilon"),
                        Dense(2, "softmax")], dtype="float64", seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=5, batch_size=8, seed=0, verbose=0)
    kernel = model.layers[0].kernel
    assert not np.allclose(kernel, kernel[:, :1])


def test_one_hot_and_labels_train_identically(rng):
    x, y = separable(rng)
    ws = []
    for target in (y, one_hot(y, 2)):
        m = Sequential([Dense(4, "tanh"), Dense(2, "softmax")], dtype="float64", seed=3)
        m.compile("sgd", "categorical_crossentropy")
        m.fit(x, target, epochs=2, batch_size=10, seed=0, verbose=0)
        ws.append(m.get_weights())
    for a, b in zip(*ws):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_bad_inputs_named(rng):
    x, y = separable(rng, 20)
    model = make()
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(bad, y, verbose=0)
    with pytest.raises(ValueError, match="label 5.*out of range"):
        model.fit(x, np.where(y == 1, 5, 0), verbose=0)
    model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="3 features per row but the model expects 2"):
        model.predict(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="rows"):
        model.fit(x, y[:5], verbose=0)
    with pytest.raises(ValueError, match="2-D"):
        model.predict(np.zeros(4))
    with pytest.raises(TypeError, match="numeric"):
        model.predict(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(x, y, batch_size=0, verbose=0)


def test_fit_before_compile(rng):
    x, y = separable(rng, 10)
    model = Sequential([Dense(2, "softmax")])
    with pytest.raises(ValueError, match="compile"):
        model.fit(x, y, verbose=0)


def test_bad_names_in_compile():
    model = Sequential([Dense(2, "softmax")])
    with pytest.raises(ValueError, match="unknown optimizer"):
        model.compile("rmsprop", "mse")
    with pytest.raises(ValueError, match="unknown loss"):
        model.compile("sgd", "hinge")
    with pytest.raises(ValueError, match="unknown metric"):
        model.compile("sgd", "mse", metrics=["auc"])


def test_divergence_stops_with_message_and_restores(rng):
    x, y = separable(rng)
    x = x * 1e4
    model = Sequential([Dense(16, "relu"), Dense(1, "identity")], seed=0)
    model.compile(optimizer={"name": "sgd", "learning_rate": 10.0}, loss="mse")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hist = model.fit(x, y.astype(np.float32), epochs=50, batch_size=8, verbose=0, seed=0)
    msgs = [str(w.message) for w in caught if issubclass(w.category, DivergenceWarning)]
    assert msgs and "epoch" in msgs[0] and "learning rate" in msgs[0]
    assert len(hist.history.get("loss", [])) < 50
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


def test_early_stopping_restores_best(rng):
    x, y = separable(rng, 200)
    xv, yv = separable(np.random.default_rng(99), 100)
    model = make()
    model.optimizer.learning_rate = 0.3
    es = EarlyStopping(monitor="val_accuracy", patience=2)
    hist = model.fit(x, y, epochs=60, batch_size=16, validation_data=(xv, yv), verbose=0,
                     seed=0, callbacks=[es])
    best = max(hist.history["val_accuracy"])
    assert model.evaluate(xv, yv, return_dict=True)["accuracy"] == pytest.approx(best)
    assert len(hist.history["val_loss"]) == len(hist.history["loss"])


def test_evaluate_and_predict(rng):
    x, y = separable(rng)
    model = make()
    model.fit(x, y, epochs=10, batch_size=8, seed=0, verbose=0)
    loss, acc = model.evaluate(x, y)
    p = model.predict(x)
    assert p.shape == (len(x), 2)
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-5)
    assert acc == pytest.approx(np.mean(model.predict_classes(x) == y))
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(len(y)), y])), rel=1e-4)


def test_weights_in_keras_order_and_set(rng):
    model = Sequential([Dense(3, "relu"), Dense(2, "softmax")], seed=0)
    model.build(4)
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(4, 3), (3,), (3, 2), (2,)]
    with pytest.raises(ValueError, match="shape"):
        model.set_weights([np.zeros((3, 4)), np.zeros(3), np.zeros((3, 2)), np.zeros(2)])
    with pytest.raises(ValueError, match="expected 4"):
        model.set_weights([np.zeros((4, 3))])


def test_summary_lists_layers():
    model = Sequential([Dense(3, "relu"), Dense(2, "softmax")], seed=0)
    model.build(4)
    text = model.summary(print_fn=None)
    assert "dense_0" in text and "Total params: 23" in text


def test_progress_bar_verbose_silent(rng, capsys):
    x, y = separable(rng, 40)
    model = make()
    model.fit(x, y, epochs=2, verbose=0)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    model.fit(x, y, epochs=2, verbose=2)
    assert "Epoch 2/2" in capsys.readouterr().err


@pytest.mark.parametrize("opt,l2,held", [
    ({"name": "adam", "learning_rate": 0.01}, 0.0, "gradient"),
    ({"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}, 0.0, "gradient"),
    ({"name": "sgd", "learning_rate": 0.1}, 0.1, "gradient"),  # L2: nothing folded
    ({"name": "sgd", "learning_rate": 0.1}, 0.0, "scaled"),  # plain SGD: η folded into δ^(L)
])
def test_what_grads_hold_after_a_training_step(rng, opt, l2, held):
    """∂J/∂θ after every step, except plain SGD without L2 (folded η: η·∂J/∂θ), as documented
    in thetanet.training."""
    x, y = separable(rng, 12)
    model = Sequential([Dense(5, "tanh", l2=l2), Dropout(0.0), Dense(2, "softmax")],
                       dtype="float64", seed=3)
    model.compile(opt, "sparse_categorical_crossentropy")
    model.build(2)
    model.forward_backward(x.astype(np.float64), y)
    grads = [g.copy() for g in model.grads]
    model.train_on_batch(x, y)
    factor = opt["learning_rate"] if held == "scaled" else 1.0
    for got, g in zip(model.grads, grads):
        np.testing.assert_allclose(got, factor * g, rtol=1e-12, atol=1e-15)


def test_progress_bar_or_lines_with_verbose_1(rng, capsys):
    x, y = separable(rng, 40)
    model = make()
    model.fit(x, y, epochs=2, batch_size=8, verbose=1)
    assert "Epoch 2/2" in capsys.readouterr().err  # the tqdm bar's title, or the plain line
