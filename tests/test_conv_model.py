"""Convolutional nets in the whole engine: exports and registration (load_model in a fresh
process), the summary's output shapes, checkpoints with an exact resume, and gradient checks that
ignore a dropout mask left over from a training forward pass."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import numpy as np
import pytest
from interrupts import InterruptAt

import thetanet
from thetanet import (
    AveragePool2D,
    Conv2D,
    Dense,
    Dropout,
    EarlyStopping,
    Flatten,
    MaxPool2D,
    Sequential,
    load_checkpoint,
)
from thetanet.checkpoint import read_checkpoint
from thetanet.gradcheck import backprop_gradients, gradcheck, numerical_gradients


def tiny_images(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n 6×6×1 images; the label says which quadrant is brightest (learnable by a conv net)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 4, n)
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, 3 * r:3 * r + 3, 3 * q:3 * q + 3, 0] += 1.0
    return x, y


def conv_net(seed: int = 1, dtype: str = "float32", dropout: float = 0.25) -> Sequential:
    return Sequential([Conv2D(3, 3, padding="same", activation="relu"), MaxPool2D(2),
                       Dropout(dropout), Conv2D(4, 2, activation="tanh"),
                       AveragePool2D(2, padding="same"), Flatten(), Dense(4, "softmax")],
                      seed=seed, dtype=dtype)


def test_conv_layers_are_exported_and_registered_in_a_fresh_process(tmp_path):
    assert {"Conv2D", "MaxPool2D", "AveragePool2D", "Flatten"} <= set(thetanet.__all__)
    assert thetanet.Conv2D is thetanet.layers.Conv2D
    x, y = tiny_images()
    model = conv_net()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=8, seed=0, verbose=0)
    model.save(tmp_path / "cnn")
    np.save(tmp_path / "x.npy", x)
    # only `import thetanet`: the layer classes must be registered by that alone
    code = ("import sys, json, numpy as np, thetanet\n"
            "m = thetanet.load_model(sys.argv[1])\n"
            "p = m.predict(np.load(sys.argv[2]))\n"
            "print(json.dumps([m.input_shape, [type(l).__name__ for l in m.layers], "
            "p.tolist()]))\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cnn"),
                          str(tmp_path / "x.npy")], capture_output=True, text=True, check=True)
    shape, kinds, pred = json.loads(out.stdout)
    assert tuple(shape) == (6, 6, 1)
    assert kinds == [type(layer).__name__ for layer in model.layers]
    np.testing.assert_array_equal(np.asarray(pred, np.float32), model.predict(x))


def test_summary_shows_feature_map_shapes():
    model = conv_net()
    model.build((6, 6, 1))
    text = model.summary(print_fn=None)
    assert "Output shape" in text
    for row in ("(Conv2D, relu)", "6×6×3", "3×3×3", "2×2×4", "1×1×4"):
        assert row in text
    assert f"Total params: {3 * 9 + 3 + 4 * 4 * 3 + 4 + 4 * 4 + 4}" in text


@pytest.mark.parametrize("layers, loss, where", [
    (lambda: [Dense(6, "tanh"), Dropout(0.5), Dense(3, "softmax")],
     "sparse_categorical_crossentropy", 1),
    (lambda: [Dense(6, "tanh"), Dense(3, "logistic"), Dropout(0.5)], "mse", 2),  # as output
], ids=["hidden", "output"])
def test_gradcheck_without_training_ignores_a_stale_dropout_mask(layers, loss, where):
    """A training forward leaves a dropout mask behind; gradcheck(training=False) skips the
    dropout layer forward and must skip it backward too (the bug gave a relative error ≈ 0.3)."""
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(8, 5)), rng.integers(0, 3, 8)
    y = labels if loss.startswith("sparse") else np.eye(3)[labels]
    model = Sequential(layers(), dtype="float64", seed=0)
    model.compile("sgd", loss)
    model.build(5)
    model.forward_backward(x, y, training=True)  # leaves a mask
    assert model.layers[where].mask is not None
    assert gradcheck(model, x, y, training=False) < 1e-7
    # and backprop equals the dropout-free network's numerical gradient
    bare = Sequential([lyr for lyr in layers() if not isinstance(lyr, Dropout)],
                      dtype="float64", seed=0)
    bare.compile("sgd", loss)
    bare.build(5)
    bare.set_weights(model.get_weights())
    for a, b in zip(backprop_gradients(model, x, y), numerical_gradients(bare, x, y)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_conv_net_gradcheck_after_a_training_forward():
    x, y = tiny_images(6)
    model = conv_net(dtype="float64", dropout=0.5)
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.build((6, 6, 1))
    model.forward_backward(x.astype(np.float64), y, training=True)
    assert gradcheck(model, x.astype(np.float64), y, training=False) < 1e-6
    assert gradcheck(model, x.astype(np.float64), y, training=True, seed=3) < 1e-6


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="POSIX signals")
def test_conv_net_checkpoint_resume_is_bit_identical(tmp_path):
    x, y = tiny_images(40)
    val = tiny_images(12, seed=1)
    fit = {"epochs": 3, "batch_size": 8, "seed": 5, "verbose": 0}

    def make() -> Sequential:
        m = conv_net()
        m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return m

    ref = make()
    ref_hist = ref.fit(x, y, validation_data=val,
                       callbacks=[EarlyStopping("val_loss", patience=5)], **fit)
    ck = tmp_path / "ck"
    with pytest.raises(KeyboardInterrupt):
        make().fit(x, y, validation_data=val, checkpoint=ck,
                   callbacks=[EarlyStopping("val_loss", patience=5), InterruptAt(7)], **fit)
    state = read_checkpoint(ck)[2]
    assert (state["epoch"], state["offset"]) == (1, 16)  # 5 batches an epoch: after batch 7
    stored = load_checkpoint(ck).model
    assert stored.input_shape == (6, 6, 1) and isinstance(stored.layers[0], Conv2D)
    again = make()
    hist = again.fit(x, y, validation_data=val, checkpoint=ck, resume=True,
                     callbacks=[EarlyStopping("val_loss", patience=5), InterruptAt(-1)],
                     **fit)
    for a, b in zip(again.get_weights(), ref.get_weights()):
        assert a.tobytes() == b.tobytes()
    assert hist.history == ref_hist.history
