"""thetanet.builders.mlp: the one builder of "an MLP from these layer sizes"."""

from __future__ import annotations

import numpy as np
import pytest

from thetanet.builders import mlp
from thetanet.layers import Dense, Dropout
from thetanet.model import Sequential


def _configs(model: Sequential) -> list[tuple[str, dict]]:
    return [(type(layer).__name__, layer.get_config()) for layer in model.layers]


def test_layers_follow_the_sizes_and_options():
    model = mlp([5, 7, 3, 2], activation="tanh", dropout=0.2, input_dropout=0.1, l2=0.01,
                output_l2=0.0, kernel_initializer="he_uniform", seed=3, dtype="float64",
                name="net")
    assert model.built and model.input_dim == 5 and model.dtype == np.float64
    assert model.name == "net" and model.seed == 3
    kinds = [kind for kind, _ in _configs(model)]
    assert kinds == ["Dropout", "Dense", "Dropout", "Dense", "Dropout", "Dense"]
    dense = [cfg for kind, cfg in _configs(model) if kind == "Dense"]
    assert [d["units"] for d in dense] == [7, 3, 2]
    assert [d["activation"]["name"] for d in dense] == ["tanh", "tanh", "softmax"]
    assert [d["kernel_initializer"] for d in dense] == ["he_uniform", "he_uniform",
                                                        "glorot_uniform"]
    assert [d["l2"] for d in dense] == [0.01, 0.01, 0.0]
    assert [cfg["rate"] for kind, cfg in _configs(model) if kind == "Dropout"] == [0.1, 0.2,
                                                                                   0.2]
    assert [w.shape for w in model.get_weights()] == [(5, 7), (7,), (7, 3), (3,), (3, 2), (2,)]


def test_two_sizes_is_a_regression_and_l2_reaches_the_output():
    model = mlp([4, 3], output_activation="logistic", l2=0.5)
    (layer,) = model.layers
    assert isinstance(layer, Dense) and layer.units == 3 and layer.l2 == 0.5
    assert layer.activation.name == "logistic"
    assert not any(isinstance(ly, Dropout) for ly in mlp([4, 6, 3]).layers)  # rate 0: none


def test_same_network_as_built_by_hand():
    """The builder adds nothing of its own: a seeded build equals the Sequential written out
    layer by layer (what the NC system, digits, logic and sklearn did before it)."""
    by_hand = Sequential([Dropout(0.2), Dense(16, "relu", kernel_initializer="he_uniform",
                                              l2=1e-3), Dropout(0.5),
                          Dense(4, "softmax", l2=1e-3)], seed=7)
    by_hand.build(10)
    built = mlp([10, 16, 4], dropout=0.5, input_dropout=0.2, l2=1e-3,
                kernel_initializer="he_uniform", seed=7)
    assert _configs(built) == _configs(by_hand)
    for a, b in zip(built.get_weights(), by_hand.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).random((6, 10), dtype=np.float32)
    np.testing.assert_array_equal(built.predict(x), by_hand.predict(x))


def test_seed_draws_the_weights():
    a, b, c = (mlp([6, 5, 2], seed=s) for s in (1, 1, 2))
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_each_layer_gets_its_own_activation():
    config = {"name": "soft_exponential", "alpha": 0.5, "learnable": True}
    model = mlp([3, 4, 4, 2], activation=config)
    first, second = (ly for ly in model.layers if isinstance(ly, Dense) and ly.units == 4)
    assert first.activation is not second.activation
    assert first.activation.params["alpha"] is not second.activation.params["alpha"]
    assert config == {"name": "soft_exponential", "alpha": 0.5, "learnable": True}


def test_trains_like_any_sequential():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([0, 1, 1, 0])
    model = mlp([2, 8, 2], activation="tanh", seed=0)
    model.compile({"name": "adam", "learning_rate": 0.05}, "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=300, batch_size=None, seed=0, verbose=0)
    assert model.predict(x).argmax(axis=1).tolist() == y.tolist()  # XOR


@pytest.mark.parametrize("sizes, message", [([3], "at least"), ([3, 0, 2], "positive"),
                                            ([], "at least")])
def test_bad_sizes(sizes, message):
    with pytest.raises(ValueError, match=message):
        mlp(sizes)
