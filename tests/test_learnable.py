"""Learnable activations: SoftExponential (α), PReLU (α), APL (a_s, b_s)."""

import math

import numpy as np
import pytest

from thetanet import Activation, Dense, Sequential, load_model
from thetanet import activations as A
from thetanet.gradcheck import gradcheck

SOFTEXP = {"name": "soft_exponential", "learnable": True}
LEARNABLE = {
    "softexp_layer": {**SOFTEXP, "alpha": -0.3},
    "softexp_unit": {**SOFTEXP, "alpha": 0.2, "per_unit": True},
    "prelu_layer": {"name": "prelu"},
    "prelu_unit": {"name": "prelu", "per_unit": True, "alpha": 0.1},
    "apl_unit": {"name": "apl", "hinges": 3, "a": [0.3, -0.2, 0.5], "b": [-0.5, 0.1, 1.0]},
    "apl_layer": {"name": "apl", "hinges": 2, "per_unit": False, "a": [0.4, -0.3]},
}
X_XOR = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
Y_XOR = np.array([0, 1, 1, 0], float)


@pytest.fixture(scope="module")
def digits():
    sk = pytest.importorskip("sklearn.datasets")
    d = sk.load_digits()
    x, y = (d.data / 16).astype(np.float32), d.target
    perm = np.random.default_rng(0).permutation(len(y))
    x, y = x[perm], y[perm]
    return x[:1300], y[:1300], x[1300:], y[1300:]


def _data(rng, n=12, d=4, k=3):
    return rng.normal(size=(n, d)), rng.integers(0, k, n)


@pytest.mark.parametrize("cfg", LEARNABLE.values(), ids=LEARNABLE.keys())
def test_model_level_gradcheck(rng, cfg):
    x, y = _data(rng)
    for layers in ([Dense(5, cfg), Dense(3, "softmax")],
                   [Dense(5), Activation(cfg), Dense(4, cfg), Dense(3, "softmax")]):
        model = Sequential(layers, dtype="float64", seed=2)
        model.compile("sgd", "sparse_categorical_crossentropy")
        assert gradcheck(model, x, y) < 1e-6
        act_names = [n for n in model.weight_names() if "/activation." in n]
        assert act_names, "the activation's parameters are model parameters"


def test_softexp_gradcheck_mixed_alphas_and_domain_continuation(rng):
    x, y = _data(rng, n=16)
    model = Sequential([Dense(6, {**SOFTEXP, "per_unit": True},
                              kernel_initializer={"name": "normal", "stddev": 2.0}),
                        Dense(3, "softmax")], dtype="float64", seed=1)
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.build(4)
    alpha = model.layers[0].activation.params["alpha"]
    alpha[...] = [-0.5, -1e-4, 1e-4, 0.4, -0.8, 0.05]
    z = model.layers[0].preactivation(x)
    u = 1 - alpha * (z + alpha)
    assert np.any(u[:, [0, 4]] < 1e-3), "some inputs lie beyond the domain limit"
    assert gradcheck(model, x, y) < 1e-6


@pytest.mark.parametrize(("cfg", "shapes"), [
    ({**SOFTEXP}, {"alpha": (1,)}),
    ({**SOFTEXP, "per_unit": True}, {"alpha": (5,)}),
    ({"name": "prelu"}, {"alpha": (1,)}),
    ({"name": "prelu", "per_unit": True}, {"alpha": (5,)}),
    ({"name": "apl", "hinges": 3}, {"a": (3, 5), "b": (3, 5)}),
    ({"name": "apl", "per_unit": False}, {"a": (2, 1), "b": (2, 1)}),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_parameter_shapes_dtypes_and_optimizer_updates(rng, cfg, shapes, dtype):
    x, y = _data(rng, n=40)
    model = Sequential([Dense(5, cfg), Dense(3, "softmax")], dtype=dtype, seed=0)
    model.compile({"name": "adam", "learning_rate": 0.05}, "sparse_categorical_crossentropy")
    model.build(4)
    act = model.layers[0].activation
    assert {k: v.shape for k, v in act.params.items()} == shapes
    assert all(p.dtype == np.dtype(dtype) for p in act.params.values())
    assert all(g.shape == act.params[k].shape for k, g in act.grads.items())
    before = {k: v.copy() for k, v in act.params.items()}
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, seed=0)
    for k, v in act.params.items():
        assert not np.array_equal(v, before[k]), f"{k} was not updated"
        assert np.all(np.isfinite(v))


@pytest.mark.parametrize("cfg", [
    {**SOFTEXP}, {**SOFTEXP, "per_unit": True}, {"name": "prelu"},
    {"name": "prelu", "per_unit": True}, {"name": "apl"}, {"name": "apl", "per_unit": False},
], ids=["softexp", "softexp_unit", "prelu", "prelu_unit", "apl", "apl_layer"])
def test_xor(cfg):
    """SoftExponential starts at α = 0, a linear network: solving XOR needs α to learn."""
    model = Sequential([Dense(8, cfg), Dense(1, "logistic")], seed=0)
    model.compile({"name": "adam", "learning_rate": 0.05}, "binary_crossentropy")
    model.fit(X_XOR, Y_XOR, epochs=400, batch_size=None, verbose=0, seed=0)
    np.testing.assert_array_equal(model.predict_classes(X_XOR).ravel(), Y_XOR)
    if cfg["name"] == "soft_exponential":
        assert np.any(model.layers[0].activation.params["alpha"] != 0)


@pytest.mark.parametrize("cfg", [{**SOFTEXP, "per_unit": True}, {"name": "prelu"},
                                 {"name": "apl"}], ids=["softexp", "prelu", "apl"])
def test_digits_and_save_load(digits, tmp_path, cfg):
    xtr, ytr, xte, yte = digits
    model = Sequential([Dense(32, cfg), Dense(10, "softmax")], seed=0)
    model.compile({"name": "adam", "learning_rate": 0.01}, "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(xtr, ytr, epochs=8, batch_size=32, verbose=0, seed=0)
    acc = model.evaluate(xte, yte)[1]
    assert acc > 0.95
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    act, act2 = model.layers[0].activation, again.layers[0].activation
    assert act2.get_config() == act.get_config()
    for k in act.params:
        np.testing.assert_array_equal(act2.params[k], act.params[k])
    np.testing.assert_array_equal(again.predict(xte), model.predict(xte))
    # training goes on from the loaded parameters
    again.fit(xtr[:64], ytr[:64], epochs=1, verbose=0, seed=0)


def test_config_carries_hyperparameters():
    cfg = A.get("apl", hinges=4, per_unit=False, a=[0, 0.1, 0.2, 0.3]).get_config()
    assert cfg == {"name": "apl", "hinges": 4, "per_unit": False, "a": [0, 0.1, 0.2, 0.3],
                   "b": None}
    se = A.get("soft_exponential", alpha=0.3, learnable=True, per_unit=True, u_min=0.01)
    assert A.get(se.get_config()).get_config() == se.get_config()
    assert A.get("prelu", alpha=0.1, per_unit=True).get_config()["alpha"] == 0.1
    with pytest.raises(ValueError, match="hinges"):
        A.get("apl", hinges=0)
    with pytest.raises(ValueError, match="3 finite"):
        A.get("apl", hinges=3, a=[1.0])


def test_prelu_columns_follow_alpha(rng):
    g = A.get("prelu", alpha=0.25)
    assert g.monotonic and not g.identity_near_origin and g.range == (-math.inf, math.inf)
    x = np.linspace(-3, 3, 601)
    np.testing.assert_allclose(g.f(x), np.where(x > 0, x, 0.25 * x))
    g.build(3, np.dtype(np.float64), rng)
    g.params["alpha"][...] = -0.5
    assert not g.monotonic and g.range == (0.0, math.inf)
    assert np.all(g.f(x) >= 0) and np.any(np.diff(g.f(x)) < 0)
    g.params["alpha"][...] = 1.0
    assert g.identity_near_origin and g.f(np.zeros(1))[0] == 0 and g.df(np.zeros(1))[0] == 1


def test_softexp_columns_follow_learned_alpha(rng):
    g = A.get("soft_exponential", learnable=True, per_unit=True)
    g.build(3, np.dtype(np.float64), rng)
    assert g.identity_near_origin and g.range == (-math.inf, math.inf)
    g.params["alpha"][...] = [0.5, 1.0, 2.0]
    assert not g.identity_near_origin and g.range == (-1.5, math.inf)
    z = np.tile(np.linspace(-1e4, 10, 1001)[:, None], (1, 3))
    assert np.all(g.f(z) >= -1.5)


@pytest.mark.parametrize("seed", range(5))
def test_apl_columns_match_samples(seed):
    r = np.random.default_rng(seed)
    a = list(r.normal(0, 0.7, 3))
    b = list(r.normal(0, 1, 3))
    g = A.get("apl", hinges=3, a=a, b=b)
    x = np.linspace(-50, 50, 200001)
    fx = g.f(x)
    assert g.monotonic == bool(np.all(np.diff(fx) >= -1e-12))
    lo, hi = g.range
    assert hi == math.inf and np.all(fx >= lo - 1e-12)
    if math.isfinite(lo):
        assert fx.min() == pytest.approx(lo, abs=1e-3)
    else:
        assert sum(a) < 0 and g.f(np.array([-1e6]))[0] < fx.min() - 10  # the left tail falls
    assert not g.identity_near_origin
    # f and f' against the paper's formula
    want = np.maximum(x, 0) + sum(ai * np.maximum(-x + bi, 0) for ai, bi in zip(a, b))
    np.testing.assert_allclose(fx, want, atol=1e-12)


def test_learnable_finite_on_wide_inputs(rng):
    z = np.tile(np.linspace(-1e4, 1e4, 2001)[:, None], (1, 4))
    for cfg in LEARNABLE.values():
        g = A.get(cfg)
        g.build(4, np.dtype(np.float64), rng)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            a = g.f(z)
            delta = g.backward(z, a, np.ones_like(z))
        assert np.all(np.isfinite(a)) and np.all(np.isfinite(delta))
        assert all(np.all(np.isfinite(v)) for v in g.grads.values())
