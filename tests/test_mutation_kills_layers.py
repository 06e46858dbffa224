"""Layer and loss behaviour that mutation testing found unpinned (issue 18; the mutants each
test kills are listed in benchmarks/results/mutation.md): dtypes kept through forward and
backward, the online-learning gradient of a wide kernel, unbuilt layers, refusals that name
what they refuse, and cross-entropy at probability 0."""

from __future__ import annotations

import numpy as np
import pytest

from thetanet import Activation, Dense, Dropout, Maxout, Sequential
from thetanet.layers.base import layer_from_config
from thetanet.losses import CategoricalCrossentropy

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)


def _dense(units, width, dtype, activation="tanh"):
    layer = Dense(units, activation)
    layer.build(width, dtype=dtype, rng=np.random.default_rng(0))
    layer.needs_input_grad = True
    return layer


def test_a_float32_dense_layer_fed_float64_computes_in_float32():
    rng = np.random.default_rng(1)
    x64 = rng.normal(size=(5, 4))
    grad = rng.normal(size=(5, 3)).astype(np.float32)
    ref, got = _dense(3, 4, F32), _dense(3, 4, F32)
    a_ref = ref.forward(x64.astype(np.float32), training=True).copy()
    dx_ref = ref.backward(grad.copy()).copy()
    a = got.forward(x64, training=True)
    np.testing.assert_allclose(a, a_ref, rtol=1e-6)
    assert a.dtype == F32
    dx = got.backward(grad.copy())
    assert dx.dtype == F32 and got.d_kernel.dtype == F32
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.d_kernel, ref.d_kernel, rtol=1e-5, atol=1e-6)
    inference = got.forward(x64)
    assert inference.dtype == F32
    np.testing.assert_allclose(inference, a_ref, rtol=1e-6)


def test_a_dense_layer_takes_an_ndarray_subclass_such_as_a_memmap(tmp_path):
    """Memory-mapped data goes through the layer's generic branch: the same numbers."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 4))
    mm = np.memmap(tmp_path / "x.dat", dtype=np.float64, mode="w+", shape=x.shape)
    mm[...] = x
    grad = rng.normal(size=(6, 3))
    ref, got = _dense(3, 4, F64), _dense(3, 4, F64)
    np.testing.assert_array_equal(got.forward(mm, training=True),
                                  ref.forward(x, training=True))
    np.testing.assert_array_equal(got.backward(grad.copy()), ref.backward(grad.copy()))
    np.testing.assert_allclose(got.d_kernel, ref.d_kernel, rtol=1e-13)
    np.testing.assert_array_equal(got.d_bias, ref.d_bias)


@pytest.mark.parametrize("make", [lambda: Maxout(3, pieces=2), lambda: Dense(3, "relu"),
                                  lambda: Dropout(0.5), lambda: Activation("tanh")],
                         ids=["maxout", "dense", "dropout", "activation"])
def test_backward_passes_gradients_in_the_models_dtype(make):
    """A float32 model keeps float32 all the way down (no float64 temporaries leaking)."""
    model = Sequential([Dense(4, "relu"), make(), Dense(2, "softmax")], seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    model.build(5)
    layer = model.layers[1]
    a = layer.forward(model.layers[0].forward(x, training=True), training=True)
    dx = layer.backward(np.ones_like(a))
    assert a.dtype == F32 and dx.dtype == F32


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_online_gradient_of_a_wide_kernel_is_the_batch_gradient(dtype):
    """Batch size 1 takes its own route to ∂J/∂kernel = xᵀδ for kernels of ≥ 4096 entries;
    it must equal the gradient of a batch of that row twice (the same mean), in the model's
    dtype."""
    rng = np.random.default_rng(2)
    tol = {"float64": (1e-12, 1e-15), "float32": (2e-5, 1e-7)}[dtype]
    model = Sequential([Dense(64, "tanh", input_dim=80), Dense(2, "softmax")],
                       dtype=dtype, seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.build(80)
    for row in rng.normal(size=(3, 80)).astype(dtype):  # the route keeps buffers between calls
        x1, y1 = row[None, :], np.array([1])
        model.forward_backward(x1, y1)
        online = [g.copy() for g in model.grads]
        model.forward_backward(np.vstack([x1, x1]), np.array([1, 1]))
        for a, b in zip(online, model.grads):
            assert a.dtype == np.dtype(dtype)
            np.testing.assert_allclose(a, b, rtol=tol[0], atol=tol[1])


def test_unbuilt_layers_have_no_parameters():
    assert Dense(3).count_params() == 0
    assert Maxout(3).count_params() == 0


def test_layers_without_a_fused_output_say_so_by_name():
    layer = Dropout(0.5)
    with pytest.raises(NotImplementedError, match="Dropout"):
        layer.forward_with_z(np.zeros((1, 2)))
    with pytest.raises(NotImplementedError, match="Dropout"):
        layer.forward_linear(np.zeros((1, 2)))


def test_an_unknown_layer_class_is_named():
    with pytest.raises(ValueError, match="'Bogus'"):
        layer_from_config({"class_name": "Bogus", "config": {}})


def test_repr_of_a_layer_shows_its_config():
    text = repr(Dense(3, "relu", name="hidden"))
    assert text.startswith("Dense(") and "units=3" in text and "name='hidden'" in text


# -- cross-entropy without a softmax in front: clipped, never inf --------------------------------

@pytest.mark.parametrize("dtype,eps", [(np.float32, 1e-7), (np.float64, 1e-15)])
def test_crossentropy_of_a_zero_probability_is_clipped(dtype, eps):
    loss = CategoricalCrossentropy()
    a = np.array([[0.0, 1.0], [0.5, 0.5]], dtype)
    y = np.array([0, 1])
    assert loss.value(y, a) == pytest.approx((-np.log(eps) - np.log(0.5)) / 2, rel=1e-5)
    g = loss.grad(y, a)
    assert np.all(np.isfinite(g))
    assert g[0, 0] == pytest.approx(-1 / (2 * eps), rel=1e-5)
    assert g[1, 1] == pytest.approx(-1 / (2 * 0.5))


def test_crossentropy_from_logits_of_very_different_scales():
    """log-sum-exp shifts each row by its own maximum: a row far below another stays finite."""
    z = np.array([[1000.0, 0.0], [-1000.0, -1001.0]])
    y = np.array([0, 1])
    a = np.exp(z - z.max(axis=1, keepdims=True))
    a /= a.sum(axis=1, keepdims=True)
    expected = (np.log1p(np.exp(-1000.0)) + np.log1p(np.exp(1.0))) / 2
    assert CategoricalCrossentropy().value(y, a, z) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("make", [lambda: Dense(3, "tanh"), lambda: Maxout(3, pieces=2)],
                         ids=["dense", "maxout"])
def test_preactivation_is_in_the_layers_dtype_for_any_input(make):
    """z = x Θ comes out in the layer's dtype even when x is float64 (direct layer use)."""
    layer = make()
    layer.build(4, dtype=F32, rng=np.random.default_rng(0))
    z = layer.preactivation(np.random.default_rng(1).normal(size=(5, 4)))
    assert z.dtype == F32


def test_a_dense_bias_gradient_from_a_float64_delta():
    """backward with a float64 gradient (direct layer use) still sums δ over the batch into
    the float32 bias gradient."""
    rng = np.random.default_rng(3)
    layer = _dense(3, 4, F32, activation=None)
    layer.forward(rng.normal(size=(6, 4)).astype(np.float32), training=True)
    grad = rng.normal(size=(6, 3))
    layer.backward(grad)
    assert layer.d_bias.dtype == F32
    np.testing.assert_allclose(layer.d_bias, grad.sum(axis=0), rtol=1e-5, atol=1e-6)


def test_weighted_layers_keep_their_name_and_dtype_and_name_themselves_in_errors():
    """The shared kernel/bias base: a layer's name survives, its arrays are in its dtype
    whatever an initialiser returns, and its refusals say which layer refuses."""
    mx = Maxout(3, name="mx")
    assert mx.name == "mx" and mx.get_config()["name"] == "mx"
    wide = Dense(2, bias_initializer=lambda shape, rng, dtype: np.ones(shape),
                 kernel_initializer=lambda shape, rng, dtype: np.ones(shape))
    wide.build(3, dtype=F32, rng=np.random.default_rng(0))
    assert wide.bias.dtype == F32 and wide.kernel.dtype == F32
    for make, name in ((Dense, "Dense"), (Maxout, "Maxout")):
        with pytest.raises(ValueError, match=f"^{name} l2 must be a non-negative number"):
            make(2, l2=-1.0)
    with pytest.raises(ValueError, match="^Maxout needs flat inputs"):
        Maxout(2).build((4, 4), dtype=F32, rng=np.random.default_rng(0))
