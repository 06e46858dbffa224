import numpy as np
import pytest

from thetanet import Dense, Sequential, losses, one_hot
from thetanet.gradcheck import gradcheck


@pytest.mark.parametrize("loss,out,kind", [
    ("categorical_crossentropy", "softmax", "onehot"),
    ("categorical_crossentropy", "softmax", "labels"),
    ("sparse_categorical_crossentropy", "softmax", "labels"),
    ("binary_crossentropy", "logistic", "binary"),
    ("mse", "identity", "real"),
    ("mse", "softmax", "onehot"),          # unfused softmax Jacobian path
    ("categorical_crossentropy", "logistic", "onehot"),  # unfused CE path
    ("binary_crossentropy", "tanh", "binary_pos"),       # unfused BCE on (0,1)-ish outputs
])
def test_loss_gradients(rng, loss, out, kind):
    x = rng.normal(size=(10, 4))
    labels = rng.integers(0, 3, 10)
    y = {"onehot": one_hot(labels, 3, np.float64), "labels": labels,
         "binary": (rng.random((10, 3)) < 0.5).astype(float), "real": rng.normal(size=(10, 3)),
         "binary_pos": (rng.random((10, 3)) < 0.5).astype(float)}[kind]
    layers = [Dense(5, "tanh"), Dense(3, out)]
    if kind == "binary_pos":
        layers = [Dense(5, "tanh"), Dense(3, "logistic", use_bias=True)]
        loss, out = "binary_crossentropy", "logistic"
    model = Sequential(layers, dtype="float64", seed=0)
    model.compile("sgd", loss)
    assert gradcheck(model, x, y) < 1e-6


def test_fused_delta_is_a_minus_y_over_m(rng):
    z = rng.normal(size=(6, 4))
    a = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = rng.integers(0, 4, 6)
    delta = losses.get("categorical_crossentropy").fused_delta(y, a)
    np.testing.assert_allclose(delta, (a - one_hot(y, 4, np.float64)) / 6)


def test_crossentropy_stable_for_huge_logits():
    ce = losses.get("sparse_categorical_crossentropy")
    z = np.array([[1000.0, -1000.0, 0.0]], np.float32)
    a = np.array([[1.0, 0.0, 0.0]], np.float32)
    assert ce.value(np.array([1]), a, z) == pytest.approx(2000.0)
    bce = losses.get("binary_crossentropy")
    v = bce.value(np.array([[0.0]]), np.array([[1.0]]), np.array([[800.0]]))
    assert np.isfinite(v) and v == pytest.approx(800.0)


def test_unknown_loss_named():
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        losses.get("hinge")
