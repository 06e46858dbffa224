"""Conv2D / MaxPool2D / AveragePool2D / Flatten against PyTorch autograd in float64 (1e-6):
layer by layer (forward, input gradient, kernel and bias gradients), then whole conv nets in a
Sequential (forward, backward and 5 optimiser steps with SGD and Adam).

Layouts: thetanet is channels-last (N, H, W, C) with kernels (k_h, k_w, C_in, C_out) like
Keras; torch is (N, C, H, W) with weights (C_out, C_in, k_h, k_w). "same" padding is Keras's
(the odd pixel after, i.e. bottom / right), reproduced in torch with an explicit ``F.pad``.
"""

import numpy as np
import pytest

from thetanet import Dense, Dropout, Sequential
from thetanet.layers.conv2d import Conv2D
from thetanet.layers.flatten import Flatten
from thetanet.layers.pooling import AveragePool2D, MaxPool2D

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = {"rtol": 1e-6, "atol": 1e-9}
TORCH_ACT = {"identity": lambda z: z, "relu": torch.relu, "tanh": torch.tanh,
             "logistic": torch.sigmoid}


def nchw(a):
    return torch.tensor(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


def nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


def keras_pad(layer, t, value=0.0):
    """F.pad with the layer's Keras padding (left, right, top, bottom)."""
    pt, pb, pl, pr = layer.pads
    return F.pad(t, (pl, pr, pt, pb), value=value) if any(layer.pads) else t


def torch_conv(layer, t, kernel, bias):
    z = F.conv2d(keras_pad(layer, t), kernel, bias, stride=layer.strides)
    return TORCH_ACT[layer.activation.name](z)


def torch_pool(layer, t):
    k, s = layer.pool_size, layer.strides
    if isinstance(layer, MaxPool2D):
        return F.max_pool2d(keras_pad(layer, t, -np.inf), k, s)
    # padded entries not counted (TensorFlow's rule): a windowed sum over a windowed count
    total = F.avg_pool2d(keras_pad(layer, t), k, s, divisor_override=1)
    count = F.avg_pool2d(keras_pad(layer, torch.ones_like(t)), k, s, divisor_override=1)
    return total / count


def build(layer, shape, seed=0):
    layer.build(shape, dtype=np.dtype(np.float64), rng=np.random.default_rng(seed))
    return layer


# -- layers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,filters,kernel,strides,padding,act", [
    ((9, 9, 1), 4, (3, 3), (1, 1), "valid", "relu"),
    ((9, 9, 1), 4, (5, 5), (1, 1), "same", "tanh"),
    ((8, 7, 3), 5, (3, 3), (2, 2), "same", None),
    ((8, 8, 2), 3, (2, 2), (1, 1), "same", "logistic"),  # even kernel: pad bottom / right
    ((10, 9, 3), 6, (4, 3), (2, 3), "same", "relu"),
    ((10, 9, 4), 2, (3, 2), (3, 2), "valid", None),
])
def test_conv_layer_matches_torch(shape, filters, kernel, strides, padding, act):
    rng = np.random.default_rng(1)
    layer = build(Conv2D(filters, kernel, strides, padding, activation=act,
                         bias_initializer={"name": "normal", "stddev": 0.3}), shape)
    x = rng.normal(size=(3, *shape))
    out = layer.forward(x, training=True)
    w = rng.normal(size=out.shape)
    dx = layer.backward(w.copy())

    tx = nchw(x).requires_grad_(True)
    tk = torch.tensor(layer.kernel.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    tb = torch.tensor(layer.bias.copy(), requires_grad=True)
    tout = torch_conv(layer, tx, tk, tb)
    (tout * nchw(w)).sum().backward()
    np.testing.assert_allclose(out, nhwc(tout), **TOL)
    np.testing.assert_allclose(dx, nhwc(tx.grad), **TOL)
    np.testing.assert_allclose(layer.d_kernel, tk.grad.numpy().transpose(2, 3, 1, 0), **TOL)
    np.testing.assert_allclose(layer.d_bias, tb.grad.numpy(), **TOL)


@pytest.mark.parametrize("cls", [MaxPool2D, AveragePool2D])
@pytest.mark.parametrize("shape,pool,strides,padding", [
    ((8, 8, 3), 2, None, "valid"),
    ((7, 9, 2), 3, 2, "valid"),
    ((7, 7, 2), 2, None, "same"),
    ((9, 6, 3), (3, 2), (2, 1), "same"),
    ((6, 6, 1), 2, 3, "valid"),
])
def test_pool_layer_matches_torch(cls, shape, pool, strides, padding):
    rng = np.random.default_rng(2)
    layer = build(cls(pool, strides, padding), shape)
    x = rng.normal(size=(3, *shape))
    out = layer.forward(x, training=True)
    w = rng.normal(size=out.shape)
    dx = layer.backward(w.copy())
    tx = nchw(x).requires_grad_(True)
    tout = torch_pool(layer, tx)
    (tout * nchw(w)).sum().backward()
    np.testing.assert_allclose(out, nhwc(tout), **TOL)
    np.testing.assert_allclose(dx, nhwc(tx.grad), **TOL)


def test_maxpool_ties_after_relu_match_torch():
    """ReLU zeros make ties common: both route δ to the first maximal entry."""
    rng = np.random.default_rng(3)
    layer = build(MaxPool2D(2), (6, 6, 2))
    x = np.maximum(rng.normal(size=(4, 6, 6, 2)) - 0.8, 0.0)
    layer.forward(x, True)
    w = rng.normal(size=(4, 3, 3, 2))
    dx = layer.backward(w.copy())
    tx = nchw(x).requires_grad_(True)
    (F.max_pool2d(tx, 2) * nchw(w)).sum().backward()
    np.testing.assert_array_equal(dx, nhwc(tx.grad))


# -- whole networks --------------------------------------------------------------------------
def small_net(dropout=False):
    layers = [Conv2D(4, 3, padding="same", activation="relu"), MaxPool2D(2),
              Conv2D(5, (2, 3), strides=(1, 2), padding="valid", activation="tanh"),
              AveragePool2D(2, strides=1, padding="same"), Flatten(), Dense(6, "relu"),
              Dense(3, "softmax")]
    if dropout:
        layers.insert(1, Dropout(0.3))
    return layers


def torch_net(model, x):
    """The same network in torch, reading the model's weights (NCHW, torch layouts)."""
    params = []
    a = x
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            k = torch.tensor(layer.kernel.transpose(3, 2, 0, 1).copy(), requires_grad=True)
            b = torch.tensor(layer.bias.copy(), requires_grad=True)
            params += [k, b]
            a = torch_conv(layer, a, k, b)
        elif isinstance(layer, (MaxPool2D, AveragePool2D)):
            a = torch_pool(layer, a)
        elif isinstance(layer, Flatten):
            a = a.permute(0, 2, 3, 1).reshape(a.shape[0], -1)  # channels-last order
        elif isinstance(layer, Dense):
            k = torch.tensor(layer.kernel.copy(), requires_grad=True)
            b = torch.tensor(layer.bias.copy(), requires_grad=True)
            params += [k, b]
            z = a @ k + b
            a = z if layer.activation.name == "softmax" else TORCH_ACT[layer.activation.name](z)
    return a, params


def torch_forward(layers_params, model, x):
    """Forward through torch with given parameter tensors (same order as model.params)."""
    it = iter(layers_params)
    a = x
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            a = torch_conv(layer, a, next(it), next(it))
        elif isinstance(layer, (MaxPool2D, AveragePool2D)):
            a = torch_pool(layer, a)
        elif isinstance(layer, Flatten):
            a = a.permute(0, 2, 3, 1).reshape(a.shape[0], -1)
        elif isinstance(layer, Dense):
            z = a @ next(it) + next(it)
            a = z if layer.activation.name == "softmax" else TORCH_ACT[layer.activation.name](z)
    return a  # logits of the softmax output


def _data(seed=4, n=12):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 9, 8, 2)), rng.integers(0, 3, n)


def test_conv_net_forward_and_backward_match_torch():
    x, y = _data()
    model = Sequential(small_net(), dtype="float64", seed=5)
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.build(x.shape[1:])
    loss, probs = model.forward_backward(x, y)
    probs = probs.copy()
    grads = [g.copy() for g in model.grads]
    logits, params = torch_net(model, nchw(x))
    tloss = F.cross_entropy(logits, torch.tensor(y))
    tloss.backward()
    np.testing.assert_allclose(loss, tloss.item(), **TOL)
    np.testing.assert_allclose(probs, torch.softmax(logits, 1).detach().numpy(), **TOL)
    np.testing.assert_allclose(model.predict(x), probs, **TOL)
    for g, p, name in zip(grads, params, model.weight_names()):
        want = p.grad.numpy()
        if g.ndim == 4:
            want = want.transpose(2, 3, 1, 0)
        np.testing.assert_allclose(g, want, err_msg=name, **TOL)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_conv_net_five_steps_match_torch(opt):
    x, y = _data(6, 16)
    model = Sequential(small_net(), dtype="float64", seed=7)
    model.compile({"name": "sgd", "learning_rate": 0.1} if opt == "sgd"
                  else {"name": "adam", "learning_rate": 0.01},
                  "sparse_categorical_crossentropy")
    model.build(x.shape[1:])
    _, tparams = torch_net(model, nchw(x))
    tparams = [p.detach().clone().requires_grad_(True) for p in tparams]
    topt = (torch.optim.SGD(tparams, lr=0.1) if opt == "sgd"
            else torch.optim.Adam(tparams, lr=0.01, betas=(0.9, 0.999), eps=1e-8))
    tx, ty = nchw(x), torch.tensor(y)
    for _ in range(5):
        ours = model.train_on_batch(x, y)
        topt.zero_grad()
        tloss = F.cross_entropy(torch_forward(tparams, model, tx), ty)
        tloss.backward()
        topt.step()
        np.testing.assert_allclose(ours, tloss.item(), **TOL)
    for w, p in zip(model.get_weights(), tparams):
        want = p.detach().numpy()
        np.testing.assert_allclose(w, want.transpose(2, 3, 1, 0) if w.ndim == 4 else want,
                                   **TOL)


def test_conv_net_trains_on_random_data():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(96, 10, 10, 1)).astype(np.float32)
    y = rng.integers(0, 4, 96)
    model = Sequential([Conv2D(6, 3, activation="relu"), MaxPool2D(2), Flatten(),
                        Dense(4, "softmax")], seed=9)
    model.compile({"name": "adam", "learning_rate": 0.01}, "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    before = model.evaluate(x, y, return_dict=True)
    model.fit(x, y, epochs=30, batch_size=16, seed=0, verbose=0)
    after = model.evaluate(x, y, return_dict=True)
    assert after["loss"] < 0.5 * before["loss"]
    assert after["accuracy"] > 0.8  # memorises 96 random images


def test_conv_net_weights_and_save_load_round_trip(tmp_path):
    from thetanet import load_model

    x, y = _data(10, 8)
    model = Sequential(small_net(dropout=True), dtype="float64", seed=11)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=4, seed=0, verbose=0)
    weights = model.get_weights()
    assert [w.shape for w in weights[:2]] == [(3, 3, 2, 4), (4,)]
    twin = Sequential(small_net(dropout=True), dtype="float64", seed=99)
    twin.build(x.shape[1:])
    assert not np.allclose(twin.predict(x), model.predict(x))
    twin.set_weights(weights)
    np.testing.assert_array_equal(twin.predict(x), model.predict(x))
    model.save(tmp_path / "cnn")
    loaded = load_model(tmp_path / "cnn")
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    assert loaded.layers[2].get_config() == model.layers[2].get_config()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_dropout_after_conv_in_a_model():
    x, y = _data(12, 8)
    model = Sequential(small_net(dropout=True), dtype="float64", seed=13)
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.build(x.shape[1:])
    model.reseed(0)
    train_a = model.forward_backward(x, y, training=True)[1].copy()
    model.reseed(0)
    train_b = model.forward_backward(x, y, training=True)[1].copy()
    np.testing.assert_array_equal(train_a, train_b)  # same seed, same masks
    assert not np.allclose(train_a, model.predict(x))  # dropout active in training only


def test_conv_net_gradcheck_with_l2_and_dropout():
    """The whole model against central differences (J includes the conv L2 term)."""
    from thetanet.gradcheck import gradcheck

    rng = np.random.default_rng(14)
    x, y = rng.normal(size=(4, 7, 6, 2)), rng.integers(0, 3, 4)
    model = Sequential([Conv2D(3, 3, padding="same", activation="tanh", l2=0.05), Dropout(0.3),
                        MaxPool2D(2, strides=1), Conv2D(2, 2, strides=2, l2=0.02),
                        AveragePool2D(2, padding="same"), Flatten(), Dense(3, "softmax")],
                       dtype="float64", seed=15)
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.build(x.shape[1:])
    assert gradcheck(model, x, y, training=False) < 1e-6
    assert gradcheck(model, x, y, training=True) < 1e-6
