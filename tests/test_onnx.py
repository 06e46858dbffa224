"""ONNX export: onnx.checker passes and onnxruntime matches model.predict within 1e-5."""

import importlib.util
import subprocess
import sys

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
    MaxPool2D,
    Sequential,
    activations,
)
from thetanet.cli import main
from thetanet.layers import Layer

HAVE_ONNX = (importlib.util.find_spec("onnx") is not None
             and importlib.util.find_spec("onnxruntime") is not None)
needs_onnx = pytest.mark.skipif(not HAVE_ONNX, reason="onnx and onnxruntime not installed")

TOL = 1e-5

#: One or more configurations per registry activation (learnable ones get random parameters).
VARIANTS = {
    "soft_exponential": [{}, {"alpha": 0.5}, {"alpha": -0.5}, {"alpha": 0.01},
                         {"alpha": -0.4, "learnable": True, "per_unit": True}],
    "prelu": [{}, {"per_unit": True}],
    "apl": [{"hinges": 3}, {"hinges": 2, "per_unit": False}],
}
CASES = [(name, kw) for name in activations.names() for kw in VARIANTS.get(name, [{}])]


def randomize_learnable(model, rng):
    """Give every learnable activation parameter (PReLU α, APL a/b, SoftExp α) random values,
    with mixed signs, so the export is checked away from the initial values."""
    for layer in model.layers:
        act = getattr(layer, "activation", None)
        for value in (act.params.values() if act is not None else []):
            value[...] = rng.uniform(-1, 1, value.shape)


def random_x(rng, n, d):
    return rng.normal(0.0, 2.0, (n, d)).astype(np.float32)


@needs_onnx
@pytest.mark.parametrize("name, kwargs", CASES,
                         ids=[f"{n}-{i}" for n, kw in
                              ((n, VARIANTS.get(n, [{}])) for n in activations.names())
                              for i in range(len(kw))])
def test_activation_parity(tmp_path, rng, name, kwargs):
    import onnx

    from thetanet.onnx import max_abs_diff, run_onnxruntime, to_onnx

    model = Sequential([Dense(12, activations.get(name, **kwargs)), Dropout(0.4),
                        Dense(5, "softmax")], seed=1)
    model.build(7)
    randomize_learnable(model, rng)
    path = tmp_path / "model.onnx"
    to_onnx(model, path)
    loaded = onnx.load(path)
    onnx.checker.check_model(loaded, full_check=True)
    assert loaded.opset_import[0].version >= 17
    assert all(node.domain in ("", "ai.onnx") for node in loaded.graph.node)
    x = random_x(rng, 400, 7)
    assert max_abs_diff(model, path, x) <= TOL
    np.testing.assert_allclose(run_onnxruntime(path, x).sum(axis=1), 1.0, atol=1e-5)
    # the activation's own output (no softmax on top), relative to its size
    hidden = Sequential([Dense(12, activations.get(name, **kwargs))], seed=2)
    hidden.build(7)
    randomize_learnable(hidden, rng)
    scale = max(1.0, float(np.abs(hidden.predict(x)).max()))
    assert max_abs_diff(hidden, to_onnx(hidden), x) <= TOL * scale


@needs_onnx
@pytest.mark.parametrize("opset", [17, 18])
def test_maxout_and_activation_layers_parity(rng, opset):
    from thetanet.onnx import max_abs_diff, to_onnx

    model = Sequential([Maxout(10, 3), Dropout(0.2), Dense(8), Activation("prelu"),
                        Maxout(6, 2, use_bias=False), Dense(4, "softmax")], seed=3)
    model.build(9)
    randomize_learnable(model, rng)
    proto = to_onnx(model, opset=opset)
    assert "ReduceMax" in {n.op_type for n in proto.graph.node}
    assert max_abs_diff(model, proto, random_x(rng, 300, 9)) <= TOL


@needs_onnx
def test_trained_float64_model_and_sklearn_estimator(rng):
    from thetanet.onnx import max_abs_diff, to_onnx
    from thetanet.sklearn import MLPClassifier

    x = rng.normal(size=(200, 6))
    y = (x[:, 0] * x[:, 1] > 0).astype(int) + (x[:, 2] > 1)
    model = Sequential([Dense(16, "tanh"), Dense(3, "softmax")], dtype="float64", seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=5, seed=0, verbose=0)
    assert max_abs_diff(model, to_onnx(model), x) <= TOL
    clf = MLPClassifier((8,), activation="sinc", max_iter=5, random_state=0)
    with pytest.warns(Warning):
        clf.fit(x, y)
    proto = to_onnx(clf)
    from thetanet.onnx import run_onnxruntime

    np.testing.assert_allclose(run_onnxruntime(proto, x), clf.predict_proba(x), atol=TOL)


@needs_onnx
def test_conv_net_parity(tmp_path, rng):
    """Conv with Keras's asymmetric "same" pads (even kernels, stride 2), both pools with
    padding, a softmax and a PReLU over channels (exported channels-last), Flatten's
    channels-last column order: onnxruntime matches model.predict within 1e-5."""
    import onnx

    from thetanet.onnx import max_abs_diff, run_onnxruntime, to_onnx

    model = Sequential([
        Conv2D(4, (2, 4), strides=(2, 1), padding="same", activation="relu"), Dropout(0.3),
        MaxPool2D(3, strides=2, padding="same"),
        Conv2D(5, 3, padding="same", activation="prelu"),
        AveragePool2D(2, padding="same"), Activation("softmax"),
        Conv2D(6, 2, activation="tanh", use_bias=False), Flatten(),
        Dense(8, "relu"), Dense(3, "softmax")], seed=4)
    model.build((13, 11, 2))
    randomize_learnable(model, rng)
    for layer in model.layers:  # weights away from the initialisation (biases too)
        for p in layer.params:
            p[...] = rng.normal(0.0, 0.5, p.shape)
    path = tmp_path / "cnn.onnx"
    proto = to_onnx(model, path)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    ops = [n.op_type for n in proto.graph.node]
    assert {"Conv", "MaxPool", "AveragePool", "Flatten", "Transpose"} <= set(ops)
    pads = [list(a.ints) for n in proto.graph.node if n.op_type == "Conv"
            for a in n.attribute if a.name == "pads"]
    assert pads[0] == [0, 1, 1, 2]  # [top, left, bottom, right]: the odd pixel after
    avg = [n for n in proto.graph.node if n.op_type == "AveragePool"][0]
    assert {a.name: a.i for a in avg.attribute}["count_include_pad"] == 0
    x = rng.normal(0.0, 1.0, (64, 13, 11, 2)).astype(np.float32)
    assert run_onnxruntime(path, x).shape == (64, 3)
    assert max_abs_diff(model, path, x) <= TOL
    # a net that ends in feature maps comes back channels-last
    maps = Sequential([Conv2D(3, 3, padding="same", activation="relu"), MaxPool2D(2)], seed=0)
    maps.build((6, 8, 1))
    got = run_onnxruntime(to_onnx(maps), x[:, :6, :8, :1])
    assert got.shape == (64, 3, 4, 3)
    assert np.abs(got - maps.predict(x[:, :6, :8, :1])).max() <= TOL


@needs_onnx
def test_export_errors():
    from thetanet.onnx import ACTIVATION_CONVERTERS, to_onnx

    assert set(activations.names()) <= set(ACTIVATION_CONVERTERS)
    with pytest.raises(ValueError, match="not built"):
        to_onnx(Sequential([Dense(2, "softmax")]))
    model = Sequential([Dense(2, "softmax")], seed=0)
    model.build(3)
    with pytest.raises(ValueError, match="opset"):
        to_onnx(model, opset=13)

    class Odd(Layer):
        def forward(self, x, training=False):
            return x

    odd = Sequential([Dense(2), Odd()], seed=0)
    odd.build(3)
    with pytest.raises(NotImplementedError, match="Odd"):
        to_onnx(odd)


@needs_onnx
def test_cli_export_onnx(tmp_path, rng, capsys):
    import onnx

    model = Sequential([Dense(8, "gaussian"), Dropout(0.1), Maxout(4, 2), Dense(3, "softmax")],
                       seed=0)
    model.build(5)
    model.save(tmp_path / "net")
    out = tmp_path / "net.onnx"
    assert main(["export-onnx", str(tmp_path / "net"), "--output", str(out), "--verify"]) == 0
    text = capsys.readouterr().out
    assert "wrote" in text and "ok" in text
    onnx.checker.check_model(onnx.load(out))
    assert main(["export-onnx", str(tmp_path / "missing"), "-o", str(out)]) == 2
    assert main(["export-onnx", str(tmp_path / "net"), "-o", str(tmp_path / "no/x.onnx")]) == 2
    assert main(["export-onnx", str(tmp_path / "net"), "-o", str(out), "--opset", "9"]) == 2
    assert "error" in capsys.readouterr().err


def test_cli_without_onnx_is_a_clean_error(tmp_path, monkeypatch, capsys):
    model = Sequential([Dense(2, "softmax")], seed=0)
    model.build(3)
    model.save(tmp_path / "net")
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    assert main(["export-onnx", str(tmp_path / "net"), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "pip install" in capsys.readouterr().err


def test_onnx_is_imported_lazily():
    code = ("import sys, thetanet, thetanet.onnx, thetanet.sklearn, thetanet.keras_convert\n"
            "from thetanet.cli import build_parser\nbuild_parser()\n"
            "bad = [m for m in ('onnx', 'onnxruntime', 'keras') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)
