"""Conv2D, MaxPool2D, AveragePool2D, Flatten at the layer level: naive reference loops and
central-difference gradient checks (float64) of the input gradient and every parameter."""

import numpy as np
import pytest

from thetanet import conv_ops
from thetanet.layers import Dropout, layer_from_config
from thetanet.layers.conv2d import Conv2D
from thetanet.layers.flatten import Flatten
from thetanet.layers.pooling import AveragePool2D, MaxPool2D


# -- naive references (loops over output pixels: slow and obviously right) --------------------
def _keras_pads(size, k, s, padding):
    if padding == "valid":
        return (size - k) // s + 1, 0, 0
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


def naive_conv(x, kernel, bias, strides, padding):
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    sh, sw = strides
    ho, pt, pb = _keras_pads(h, kh, sh, padding)
    wo, pl, pr = _keras_pads(w, kw, sw, padding)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    z = np.zeros((n, ho, wo, f))
    for p in range(ho):
        for q in range(wo):
            win = xp[:, p * sh:p * sh + kh, q * sw:q * sw + kw, :]
            z[:, p, q, :] = np.einsum("nijc,ijco->no", win, kernel) + bias
    return z


def naive_pool(x, pool, strides, padding, kind):
    n, h, w, c = x.shape
    (ph, pw), (sh, sw) = pool, strides
    ho, pt, pb = _keras_pads(h, ph, sh, padding)
    wo, pl, pr = _keras_pads(w, pw, sw, padding)
    out = np.zeros((n, ho, wo, c))
    for p in range(ho):
        for q in range(wo):
            r0, c0 = p * sh - pt, q * sw - pl
            win = x[:, max(r0, 0):max(r0 + ph, 0), max(c0, 0):max(c0 + pw, 0), :]
            out[:, p, q, :] = win.max(axis=(1, 2)) if kind == "max" else win.mean(axis=(1, 2))
    return out


# -- helpers ---------------------------------------------------------------------------------
def build(layer, shape, dtype=np.float64, seed=0):
    layer.build(shape, dtype=np.dtype(dtype), rng=np.random.default_rng(seed))
    return layer


def loss_and_grads(layer, x, w):
    """J = Σ w ⊙ out + penalty; returns J, ∂J/∂x, [∂J/∂θ]."""
    out = layer.forward(x, training=True)
    j = float(np.sum(w * out)) + (layer.penalty() if hasattr(layer, "penalty") else 0.0)
    dx = layer.backward(w.copy())
    return j, np.array(dx, copy=True), [g.copy() for g in layer.grads]


def numeric(layer, x, w, arr, eps=1e-6):
    g = np.zeros(arr.shape)
    flat, gflat = arr.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        jp = loss_and_grads(layer, x, w)[0]
        flat[i] = orig - eps
        jm = loss_and_grads(layer, x, w)[0]
        flat[i] = orig
        gflat[i] = (jp - jm) / (2 * eps)
    return g


def rel_err(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


def gradcheck_layer(layer, x, seed=1):
    rng = np.random.default_rng(seed)
    out = layer.forward(x, training=True)
    w = rng.normal(size=out.shape)
    _, dx, grads = loss_and_grads(layer, x, w)
    assert dx.shape == x.shape
    assert np.linalg.norm(dx) > 0
    assert rel_err(dx, numeric(layer, x, w, x)) < 1e-7
    for p, g in zip(layer.params, grads):
        assert g.shape == p.shape
        assert np.linalg.norm(g) > 0
        assert rel_err(g, numeric(layer, x, w, p)) < 1e-7


CONV_CASES = [  # (input HWC, filters, kernel, strides, padding)
    ((7, 6, 1), 3, (3, 3), (1, 1), "valid"),
    ((7, 6, 1), 3, (3, 3), (1, 1), "same"),
    ((7, 7, 3), 4, (3, 3), (2, 2), "valid"),
    ((7, 7, 3), 4, (3, 3), (2, 2), "same"),
    ((6, 8, 2), 5, (2, 4), (1, 2), "same"),  # even kernels: Keras pads more after
    ((8, 5, 3), 2, (4, 2), (2, 1), "same"),
    ((5, 9, 1), 2, (5, 2), (1, 3), "valid"),
    ((6, 6, 2), 3, (1, 1), (1, 1), "valid"),
]


# -- Conv2D ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,filters,kernel,strides,padding", CONV_CASES)
def test_conv_forward_matches_naive(shape, filters, kernel, strides, padding):
    rng = np.random.default_rng(3)
    layer = build(Conv2D(filters, kernel, strides, padding,
                         bias_initializer={"name": "normal", "stddev": 1.0}), shape)
    x = rng.normal(size=(3, *shape))
    want = naive_conv(x, layer.kernel, layer.bias, strides, padding)
    assert layer.output_shape == want.shape[1:]
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.forward(x, training=True), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.preactivation(x), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,filters,kernel,strides,padding", CONV_CASES)
@pytest.mark.parametrize("activation,l2", [(None, 0.0), ("tanh", 0.03)])
def test_conv_gradcheck(shape, filters, kernel, strides, padding, activation, l2):
    rng = np.random.default_rng(4)
    layer = build(Conv2D(filters, kernel, strides, padding, activation=activation, l2=l2,
                         bias_initializer={"name": "normal", "stddev": 0.5}), shape)
    gradcheck_layer(layer, rng.normal(size=(2, *shape)))


def test_conv_learnable_activation_gradcheck():
    """A per-channel PReLU inside the layer: α gets its gradient summed over pixels."""
    rng = np.random.default_rng(5)
    layer = build(Conv2D(3, 3, padding="same",
                         activation={"name": "prelu", "alpha": 0.2, "per_unit": True}),
                  (5, 5, 2))
    assert layer.param_names == ("kernel", "bias", "activation.alpha")
    assert layer.params[2].shape == (3,)
    gradcheck_layer(layer, rng.normal(size=(2, 5, 5, 2)))


def test_conv_relu_fused_and_preactivation_delta():
    rng = np.random.default_rng(6)
    layer = build(Conv2D(4, 3, activation="relu"), (6, 6, 2))
    x = rng.normal(size=(2, 6, 6, 2))
    z = naive_conv(x, layer.kernel, layer.bias, (1, 1), "valid")
    np.testing.assert_allclose(layer.forward(x, True), np.maximum(z, 0), atol=1e-12)
    delta = rng.normal(size=z.shape)
    dx_pre = layer.backward(delta.copy(), grad_is_preactivation=True).copy()
    dk_pre = layer.d_kernel.copy()
    ref = build(Conv2D(4, 3), (6, 6, 2))
    ref.kernel[...], ref.bias[...] = layer.kernel, layer.bias
    ref.forward(x, True)
    np.testing.assert_allclose(dx_pre, ref.backward(delta.copy()), atol=1e-12)
    np.testing.assert_allclose(dk_pre, ref.d_kernel, atol=1e-12)


def test_conv_chunks_and_buffer_reuse(monkeypatch):
    """Chunked im2col (a tiny budget) and batches of changing size give the same numbers."""
    rng = np.random.default_rng(7)
    shape = (6, 7, 2)
    whole = build(Conv2D(3, 3, strides=(1, 2), padding="same", activation="tanh", l2=0.1),
                  shape)
    chunked = build(Conv2D(3, 3, strides=(1, 2), padding="same", activation="tanh", l2=0.1),
                    shape)
    for m in (5, 2, 5, 1):
        x = rng.normal(size=(m, *shape))
        w = rng.normal(size=(m, *whole.output_shape))
        monkeypatch.setattr(conv_ops, "COLS_BUDGET", 1 << 23)
        j1, dx1, g1 = loss_and_grads(whole, x, w)
        monkeypatch.setattr(conv_ops, "COLS_BUDGET", 70)  # about one example per chunk
        j2, dx2, g2 = loss_and_grads(chunked, x, w)
        np.testing.assert_allclose(j1, j2, rtol=1e-12)
        np.testing.assert_allclose(dx1, dx2, atol=1e-12)
        for a, b in zip(g1, g2):
            np.testing.assert_allclose(a, b, atol=1e-12)
        np.testing.assert_allclose(chunked.forward(x), whole.forward(x), atol=1e-12)
    monkeypatch.setattr(conv_ops, "COLS_BUDGET", 70)
    gradcheck_layer(chunked, rng.normal(size=(3, *shape)))


def test_both_im2col_layouts_and_wide_rows():
    one = build(Conv2D(2, 3), (9, 9, 1))
    three = build(Conv2D(2, 3), (9, 9, 3))
    assert one._transposed and not three._transposed  # the speed path, both checked above
    for rows, cols in [(50176, 6), (6400, 16), (7, 3), (1, 600), (97, 5)]:
        r, w = conv_ops.wide_shape(rows, cols)
        assert r * w == rows * cols and w % cols == 0 and rows % (w // cols) == 0
        assert w <= max(512, cols)
    assert conv_ops.wide_shape(50176, 6)[1] >= 256


def test_conv_first_layer_needs_no_input_grad():
    layer = build(Conv2D(2, 3), (5, 5, 1))
    layer.needs_input_grad = False
    x = np.random.default_rng(8).normal(size=(2, 5, 5, 1))
    out = layer.forward(x, True)
    assert layer.backward(np.ones_like(out)) is None
    assert np.linalg.norm(layer.d_kernel) > 0


def test_conv_float32_close_to_float64():
    rng = np.random.default_rng(9)
    l64 = build(Conv2D(4, 3, padding="same", activation="relu"), (8, 8, 3))
    l32 = build(Conv2D(4, 3, padding="same", activation="relu"), (8, 8, 3), np.float32)
    x = rng.normal(size=(4, 8, 8, 3))
    out = l32.forward(x.astype(np.float32), True)
    assert out.dtype == np.float32 and l32.kernel.dtype == np.float32
    np.testing.assert_allclose(out, l64.forward(x, True), atol=1e-5)


def test_conv_keras_layout_and_config_round_trip():
    layer = build(Conv2D(5, (2, 3), strides=2, padding="same", activation="relu", l2=0.01,
                         use_bias=False, input_shape=(6, 7, 3), name="c1"), (6, 7, 3))
    assert layer.kernel.shape == (2, 3, 3, 5)
    assert layer.params == [layer.kernel] and layer.weight_names == ["kernel"]
    assert layer.output_shape == (3, 4, 5)
    cfg = {"class_name": "Conv2D", "config": layer.get_config()}
    again = layer_from_config(cfg)
    assert again.get_config() == layer.get_config()
    with_bias = build(Conv2D(5, 2), (6, 7, 3))
    assert with_bias.weight_names == ["kernel", "bias"]
    assert with_bias.count_params() == 2 * 2 * 3 * 5 + 5


@pytest.mark.parametrize("init,limit", [
    ("he_uniform", np.sqrt(6.0 / (5 * 5 * 6))),  # fan_in = k_h·k_w·C_in
    ("glorot_uniform", np.sqrt(6.0 / (5 * 5 * 6 + 5 * 5 * 16))),  # + fan_out = k_h·k_w·C_out
])
def test_conv_initialiser_uses_keras_fans(init, limit):
    layer = build(Conv2D(16, 5, kernel_initializer=init), (12, 12, 6))
    assert np.abs(layer.kernel).max() <= limit
    assert np.abs(layer.kernel).max() > 0.95 * limit


@pytest.mark.parametrize("kwargs,match", [
    ({"filters": 0, "kernel_size": 3}, "filters"),
    ({"filters": 2, "kernel_size": (3, 0)}, "kernel_size"),
    ({"filters": 2, "kernel_size": 3, "strides": -1}, "strides"),
    ({"filters": 2, "kernel_size": 3, "padding": "full"}, "padding"),
    ({"filters": 2, "kernel_size": 3, "l2": -1.0}, "l2"),
])
def test_conv_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Conv2D(**kwargs)


def test_conv_rejects_bad_shapes():
    with pytest.raises(ValueError, match="height, width, channels"):
        build(Conv2D(2, 3), 12)
    with pytest.raises(ValueError, match="does not fit"):
        build(Conv2D(2, 5), (4, 8, 1))
    with pytest.raises(ValueError, match="declared"):
        build(Conv2D(2, 3, input_shape=(8, 8, 1)), (8, 8, 3))
    layer = build(Conv2D(2, 3), (8, 8, 1))
    with pytest.raises(ValueError, match="expects inputs"):
        layer.forward(np.zeros((2, 8, 8, 3)))


# -- pooling ---------------------------------------------------------------------------------
POOL_CASES = [  # (input HWC, pool, strides, padding)
    ((6, 6, 2), (2, 2), None, "valid"),  # windows tile the input
    ((7, 5, 3), (2, 2), None, "valid"),  # stride == pool, remainder dropped
    ((7, 7, 2), (3, 3), (2, 2), "valid"),  # overlapping
    ((6, 7, 2), (2, 3), (3, 1), "valid"),  # gaps and overlaps
    ((7, 5, 2), (2, 2), None, "same"),
    ((6, 6, 1), (3, 3), (2, 2), "same"),
    ((5, 8, 2), (2, 4), (1, 3), "same"),
]


@pytest.mark.parametrize("cls,kind", [(MaxPool2D, "max"), (AveragePool2D, "avg")])
@pytest.mark.parametrize("shape,pool,strides,padding", POOL_CASES)
def test_pool_forward_matches_naive(cls, kind, shape, pool, strides, padding):
    layer = build(cls(pool, strides, padding), shape)
    x = np.random.default_rng(10).normal(size=(3, *shape))
    want = naive_pool(x, pool, strides or pool, padding, kind)
    assert layer.output_shape == want.shape[1:]
    np.testing.assert_allclose(layer.forward(x), want, atol=1e-12)
    np.testing.assert_allclose(layer.forward(x, training=True), want, atol=1e-12)


@pytest.mark.parametrize("cls", [MaxPool2D, AveragePool2D])
@pytest.mark.parametrize("shape,pool,strides,padding", POOL_CASES)
def test_pool_gradcheck(cls, shape, pool, strides, padding):
    layer = build(cls(pool, strides, padding), shape)
    assert layer.params == [] and layer.count_params() == 0
    gradcheck_layer(layer, np.random.default_rng(11).normal(size=(2, *shape)))


def test_maxpool_routes_delta_to_first_argmax_on_ties():
    layer = build(MaxPool2D(2), (2, 2, 1))
    x = np.array([[[[0.0], [3.0]], [[3.0], [1.0]]], [[[0.0], [0.0]], [[0.0], [0.0]]]])
    out = layer.forward(x, True)
    np.testing.assert_array_equal(out.ravel(), [3.0, 0.0])
    dx = layer.backward(np.array([2.0, 5.0]).reshape(2, 1, 1, 1))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 2], [0, 0]])
    np.testing.assert_array_equal(dx[1, :, :, 0], [[5, 0], [0, 0]])


def test_maxpool_overlapping_windows_add_their_routes():
    layer = build(MaxPool2D(2, strides=1), (2, 3, 1))
    x = np.array([[[1.0], [9.0], [2.0]], [[0.0], [3.0], [4.0]]])[None]
    layer.forward(x, True)
    dx = layer.backward(np.array([[[[1.0], [10.0]]]]))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 11, 0], [0, 0, 0]])


def test_avgpool_same_padding_counts_real_inputs_only():
    layer = build(AveragePool2D(2, padding="same"), (3, 3, 1))
    x = np.arange(9.0).reshape(1, 3, 3, 1)
    out = layer.forward(x)[0, :, :, 0]
    np.testing.assert_allclose(out, [[2.0, 3.5], [6.5, 8.0]])


def test_pool_config_and_default_strides():
    layer = MaxPool2D((2, 3), padding="same", name="p")
    assert layer.strides == (2, 3)
    again = layer_from_config({"class_name": "MaxPool2D", "config": layer.get_config()})
    assert again.get_config() == layer.get_config()
    avg = layer_from_config({"class_name": "AveragePool2D",
                             "config": AveragePool2D(3, 1).get_config()})
    assert (avg.pool_size, avg.strides, avg.padding) == ((3, 3), (1, 1), "valid")
    with pytest.raises(ValueError, match="pool_size"):
        MaxPool2D(0)
    with pytest.raises(ValueError, match="height, width, channels"):
        build(AveragePool2D(2), (4, 4))


# -- Flatten ---------------------------------------------------------------------------------
def test_flatten_is_channels_last_and_round_trips_grad():
    layer = build(Flatten(), (2, 3, 4))
    assert layer.output_shape == (24,) and layer.output_dim == 24
    x = np.random.default_rng(12).normal(size=(2, 2, 3, 4))
    out = layer.forward(x, True)
    assert out.shape == (2, 24)
    # column (p·W + q)·C + c holds x[n, p, q, c]
    assert out[1, (1 * 3 + 2) * 4 + 3] == x[1, 1, 2, 3]
    gradcheck_layer(layer, x)
    assert layer_from_config({"class_name": "Flatten", "config": layer.get_config()}).name \
        == layer.name


def test_dropout_works_on_feature_maps():
    conv = build(Conv2D(3, 3, activation="relu"), (6, 6, 2))
    drop = build(Dropout(0.5), conv.output_shape)
    assert drop.output_shape == conv.output_shape
    drop.rng = np.random.default_rng(13)
    x = np.random.default_rng(14).normal(size=(4, 6, 6, 2))
    a = conv.forward(x, True)
    kept = drop.forward(a, True)
    assert kept.shape == a.shape
    mask = drop.mask
    np.testing.assert_allclose(kept, a * mask)
    assert set(np.unique(mask)) <= {0.0, 2.0} and 0 < np.count_nonzero(mask) < mask.size
    g = np.ones_like(kept)
    np.testing.assert_allclose(drop.backward(g), mask)
