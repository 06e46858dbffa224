"""ONNX export of sequence models (unrolled graphs), checked by onnxruntime: the same outputs
as ``predict`` within 1e-5 for padded (mask_zero) and explicitly masked inputs."""

import importlib.util

import numpy as np
import pytest

from thetanet import GRU, LSTM, Bidirectional, Dense, Embedding, Masking, Sequential, SimpleRNN

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None,
    reason="onnx and onnxruntime not installed")


def _ids():
    x = np.random.default_rng(0).integers(1, 9, (6, 7))
    x[1, 4:] = 0
    x[3, 1:] = 0
    x[4, :3] = 0  # pre-padding too: masks need not be a prefix
    return x


def _random_biases(model):
    rng = np.random.default_rng(1)
    for layer in model.layers:
        for inner in (layer, getattr(layer, "forward_layer", None),
                      getattr(layer, "backward_layer", None)):
            if inner is not None and getattr(inner, "use_bias", False):
                inner.bias[...] = rng.normal(size=inner.bias.shape)


@pytest.mark.parametrize("layers", [
    lambda: [LSTM(5, return_sequences=True), Dense(3, "softmax")],
    lambda: [GRU(5, go_backwards=True, activation="arctan"), Dense(3, "softmax")],
    lambda: [Bidirectional(SimpleRNN(5, return_sequences=True)),
             LSTM(3, return_sequences=True, go_backwards=True, recurrent_activation="tanh"),
             Dense(3, "softmax")],
    lambda: [Bidirectional(GRU(4), "sum"), Dense(2, "logistic")],
])
def test_sequence_models_export_to_onnx(tmp_path, layers):
    from thetanet.onnx import max_abs_diff, to_onnx

    model = Sequential([Embedding(9, 4, mask_zero=True), *layers()], seed=1)
    model.build(7)
    _random_biases(model)
    to_onnx(model, tmp_path / "m.onnx")
    assert max_abs_diff(model, tmp_path / "m.onnx", _ids()) < 1e-5
    assert max_abs_diff(model, tmp_path / "m.onnx", n=16) < 1e-5  # random ids, some 0


def test_explicit_mask_exports_to_onnx():
    from thetanet.onnx import max_abs_diff, to_onnx

    x = np.random.default_rng(2).normal(size=(5, 6, 3))
    x[0, 4:] = 0
    x[2, :2] = 0
    model = Sequential([Masking(0.0), GRU(4, return_sequences=True), Dense(2)], seed=0)
    model.build((6, 3))
    _random_biases(model)
    assert max_abs_diff(model, to_onnx(model), x) < 1e-5
