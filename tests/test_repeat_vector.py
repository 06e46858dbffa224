"""RepeatVector: (m, d) → (m, n, d); backward sums δ over the n steps."""

from __future__ import annotations

import numpy as np
import pytest

from thetanet import LSTM, Dense, Input, Model, RepeatVector
from thetanet.gradcheck import gradcheck
from thetanet.layers import layer_from_config


def test_forward_repeats_and_backward_sums():
    layer = RepeatVector(3)
    assert layer.build((4,), dtype="float64", rng=np.random.default_rng(0)) == (3, 4)
    x = np.arange(8.0).reshape(2, 4)
    a = layer.forward(x, training=True)
    assert a.shape == (2, 3, 4) and a.flags.c_contiguous
    for t in range(3):
        np.testing.assert_array_equal(a[:, t], x)
    g = np.random.default_rng(1).normal(size=(2, 3, 4))
    np.testing.assert_allclose(layer.backward(g), g.sum(axis=1))


def test_gradients_through_repeat_vector_in_a_graph():
    x = Input((5,))
    h = LSTM(3, return_sequences=True)(RepeatVector(4)(Dense(2, "tanh")(x)))
    model = Model(x, Dense(3, "softmax")(h), dtype="float64", seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(2)
    assert gradcheck(model, rng.normal(size=(3, 5)), rng.integers(0, 3, (3, 4))) < 1e-7


def test_config_round_trip_and_errors():
    layer = RepeatVector(7, name="r")
    again = layer_from_config({"class_name": "RepeatVector", "config": layer.get_config()})
    assert again.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="positive integer"):
        RepeatVector(0)
    with pytest.raises(ValueError, match="flat"):
        RepeatVector(2).build((3, 4), dtype="float64", rng=np.random.default_rng(0))
