r"""ONNX export: a built :class:`thetanet.Sequential` as a standard ONNX graph (opset ≥ 17).

>>> from thetanet.onnx import to_onnx, run_onnxruntime
>>> proto = to_onnx(model, "model.onnx")              # checked with onnx.checker
>>> probs = run_onnxruntime("model.onnx", x)           # ≈ model.predict(x), float32

The graph has one input ``input`` (float32, shape [batch, input_dim], or [batch, H, W, C] for
a convolutional net: channels-last, like the model) and one output ``output`` (float32,
[batch, output_dim]): the model's a^(L), i.e. softmax probabilities for a classifier. Every
piece is expressed in standard ``ai.onnx`` operators:

===================  ===========================================================================
thetanet             ONNX
===================  ===========================================================================
Dense                MatMul(x, kernel) + Add(bias), then its activation
Dropout              nothing (inference: the identity)
Activation           its activation
Maxout               MatMul + Add → Reshape [batch, units, pieces] → ReduceMax over the pieces
Conv2D               Conv (weights (C_out, C_in, k_h, k_w), pads [p_t, p_l, p_b, p_r]: "same"
                     with Keras's odd pixel at the bottom / right), then its activation
MaxPool2D            MaxPool (pads as Conv2D's: padding never wins the max)
AveragePool2D        AveragePool(count_include_pad=0): padding is not averaged
Flatten              Flatten(axis=1), in channels-last order (see below)
identity             nothing
binary_step          Cast(GreaterOrEqual(z, 0))
logistic, tanh,      Sigmoid, Tanh, Atan, Relu, Sin, Softmax(axis=-1)
arctan, relu,
sinusoid, softmax
softplus             Max(z, 0) + Log(1 + Exp(−|z|))  (never overflows)
bent_identity        0.5·z·z/(√(z² + 1) + 1) + z      (no cancellation near 0)
sinc                 Where(z = 0, 1, Sin(z)/z)
gaussian             Exp(−z·z)
soft_exponential     per sign of α: (e^(αz) − 1)/α + α, z, or −ln(1 − α(z + α))/α with the
                     engine's tangent-line continuation below u_min and saturation at the
                     float32 maximum; expm1/log1p by Kahan's accurate formulas
prelu                PRelu(z, α)
apl                  Relu(z) + Σ_s a_s·Relu(b_s − z)
===================  ===========================================================================

ONNX's Conv and pools work on channels-first (N, C, H, W) tensors, thetanet on channels-last
(N, H, W, C): a Transpose to NCHW goes before the first of them, and one back to NHWC before
anything that depends on the layout — Flatten (so that its columns are thetanet's (p·W + q)·C + c
and the Dense kernels read the same columns), a softmax or a learnable activation (their axis
and parameters are per channel, the last axis), and the output. Elementwise activations and
dropout run in either layout.

Sequence models (Embedding, Masking, SimpleRNN, LSTM, GRU, Bidirectional, a Dense layer at
every step) export as unrolled graphs over their fixed T steps: see
:mod:`thetanet.onnx_recurrent`. Their input is the ids as float32 [batch, T].

Learnable activations (PReLU, APL, learnable SoftExponential) are exported with their current
parameter values. Weights are written as float32 (a float64 model is converted). An activation
or layer without a converter here raises ``NotImplementedError``: register one in
``ACTIVATION_CONVERTERS`` / ``LAYER_CONVERTERS``.

``onnx`` (and ``onnxruntime`` for :func:`run_onnxruntime` / :func:`max_abs_diff`) are
imported only when these functions are called: ``pip install 'thetanet[onnx]'``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from thetanet._version import __version__
from thetanet.files import atomic_write_bytes
from thetanet.layers import (
    Activation,
    AveragePool2D,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    Layer,
    Maxout,
    MaxPool2D,
)
from thetanet.onnx_recurrent import sequence_converters

__all__ = ["ACTIVATION_CONVERTERS", "DEFAULT_OPSET", "LAYER_CONVERTERS", "MIN_OPSET",
           "max_abs_diff", "run_onnxruntime", "to_onnx"]

#: The opset written by default, and the lowest one supported.
DEFAULT_OPSET = 17
MIN_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"

_F32 = np.float32
_F32_MAX = float(np.finfo(np.float32).max)


def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("ONNX export needs the onnx package: pip install 'thetanet[onnx]'"
                          ) from exc
    return onnx


class GraphBuilder:
    """Collects nodes and constant initializers with unique names (a thin onnx.helper layer)."""

    def __init__(self, onnx: Any, opset: int) -> None:
        self.onnx = onnx
        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0
        #: the current tensor is in ONNX's (N, C, H, W) layout, transposed from thetanet's
        #: (N, H, W, C) (see the module)
        self.nchw = False
        #: the current tensor's mask of real steps (bool [batch, T]), or None
        self.mask: str | None = None

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: Any, hint: str = "const", dtype: Any = _F32) -> str:
        """An initializer holding ``value`` (float32 unless ``dtype`` says otherwise)."""
        arr = np.asarray(value, dtype=dtype)
        name = self._name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, *inputs: str, hint: str | None = None, **attrs: Any) -> str:
        """Add one node ``op_type(inputs) -> output`` and return the output's name."""
        out = self._name(hint or op_type.lower())
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [out],
                                                     name=f"{out}_node", **attrs))
        return out

    # -- small conveniences --------------------------------------------------------------
    def where(self, cond: str, a: str, b: str) -> str:
        return self.op("Where", cond, a, b)

    def scalar(self, v: float) -> str:
        return self.const(v, "c")

    def channels_first(self, x: str) -> str:
        """x in (N, C, H, W) for ONNX's Conv and pools (a Transpose unless it already is)."""
        if not self.nchw:
            x = self.op("Transpose", x, perm=[0, 3, 1, 2], hint="to_nchw")
            self.nchw = True
        return x

    def channels_last(self, x: str) -> str:
        """x back in thetanet's (N, H, W, C) layout (a Transpose if it is not)."""
        if self.nchw:
            x = self.op("Transpose", x, perm=[0, 2, 3, 1], hint="to_nhwc")
            self.nchw = False
        return x


# -- activations ---------------------------------------------------------------------------------
ActivationConverter = Callable[[GraphBuilder, Any, str], str]


def _unary(op_type: str, **attrs: Any) -> ActivationConverter:
    def convert(g: GraphBuilder, act: Any, z: str) -> str:
        return g.op(op_type, z, **attrs)

    return convert


def _identity(g: GraphBuilder, act: Any, z: str) -> str:
    return z


def _binary_step(g: GraphBuilder, act: Any, z: str) -> str:
    ge = g.op("GreaterOrEqual", z, g.scalar(0.0))
    return g.op("Cast", ge, to=g.onnx.TensorProto.FLOAT)


def _softplus(g: GraphBuilder, act: Any, z: str) -> str:
    # max(z, 0) + ln(1 + e^(−|z|)): e^(−|z|) ≤ 1, so nothing overflows
    e = g.op("Exp", g.op("Neg", g.op("Abs", z)))
    return g.op("Add", g.op("Max", z, g.scalar(0.0)), g.op("Log", g.op("Add", e, g.scalar(1.0))))


def _bent_identity(g: GraphBuilder, act: Any, z: str) -> str:
    # (√(z² + 1) − 1)/2 + z, with √(z² + 1) − 1 = z·z/(√(z² + 1) + 1)
    h = g.op("Sqrt", g.op("Add", g.op("Mul", z, z), g.scalar(1.0)))
    frac = g.op("Div", z, g.op("Add", h, g.scalar(1.0)))
    return g.op("Add", g.op("Mul", g.op("Mul", z, frac), g.scalar(0.5)), z)


def _sinc(g: GraphBuilder, act: Any, z: str) -> str:
    zero = g.op("Equal", z, g.scalar(0.0))
    safe = g.where(zero, g.scalar(1.0), z)
    return g.where(zero, g.scalar(1.0), g.op("Div", g.op("Sin", safe), safe))


def _gaussian(g: GraphBuilder, act: Any, z: str) -> str:
    return g.op("Exp", g.op("Neg", g.op("Mul", z, z)))


def _expm1(g: GraphBuilder, t: str) -> str:
    """e^t − 1 without cancellation for small |t| (Kahan: (u − 1)·t / ln u, u = e^t)."""
    u = g.op("Exp", t)
    um1 = g.op("Sub", u, g.scalar(1.0))
    kahan = g.where(g.op("Equal", u, g.scalar(1.0)), t,
                    g.op("Div", g.op("Mul", um1, t), g.op("Log", u)))
    small = g.op("Less", g.op("Abs", t), g.scalar(1.0))
    return g.where(small, kahan, um1)


def _log1p(g: GraphBuilder, s: str) -> str:
    """ln(1 + s) for s > −1 without cancellation (Kahan: ln u · s / (u − 1), u = 1 + s)."""
    u = g.op("Add", s, g.scalar(1.0))
    return g.where(g.op("Equal", u, g.scalar(1.0)), s,
                   g.op("Div", g.op("Mul", g.op("Log", u), s), g.op("Sub", u, g.scalar(1.0))))


def _soft_exponential(g: GraphBuilder, act: Any, z: str) -> str:
    """The three branches of SoftExponential, selected per unit by the sign of α."""
    alpha = np.atleast_1d(np.asarray(act.params.get("alpha", act.alpha), dtype=_F32))
    pos, neg = alpha > 0, alpha < 0
    out = z
    if neg.any():
        u_min = _F32(act.u_min)
        an = np.where(neg, alpha, _F32(-1))  # safe stand-in where α ≥ 0
        x_c = (1 - u_min) / an - an  # where u = u_min: the tangent line starts
        a_name = g.const(an, "alpha_neg")
        # s = −α(z + α), u = 1 + s; exact formula where u > u_min, tangent line below
        s = g.op("Neg", g.op("Mul", g.op("Add", z, a_name), a_name))
        inside = g.op("Greater", s, g.scalar(float(u_min) - 1.0))
        s_in = g.where(inside, s, g.scalar(0.0))
        exact = g.op("Div", g.op("Neg", _log1p(g, s_in)), a_name)
        line = g.op("Add", g.const(-math.log(u_min) / an, "line0"),
                    g.op("Div", g.op("Sub", z, g.const(x_c, "x_c")), g.scalar(float(u_min))))
        f_neg = g.where(inside, exact, line)
        out = f_neg if neg.all() else g.where(g.const(neg, "alpha_lt0", bool), f_neg, out)
    if pos.any():
        ap = g.const(np.where(pos, alpha, _F32(1)), "alpha_pos")
        f_pos = g.op("Add", g.op("Div", _expm1(g, g.op("Mul", z, ap)), ap), ap)
        f_pos = g.op("Clip", f_pos, g.scalar(-_F32_MAX), g.scalar(_F32_MAX))  # saturate
        out = f_pos if pos.all() else g.where(g.const(pos, "alpha_gt0", bool), f_pos, out)
    return out


def _prelu(g: GraphBuilder, act: Any, z: str) -> str:
    slope = np.atleast_1d(np.asarray(act.params.get("alpha", act.alpha), dtype=_F32))
    return g.op("PRelu", z, g.const(slope, "prelu_alpha"))


def _apl(g: GraphBuilder, act: Any, z: str) -> str:
    a = np.asarray(act.params["a"], dtype=_F32)  # (S, n), n = units or 1 (built layers)
    b = np.asarray(act.params["b"], dtype=_F32)
    out = g.op("Relu", z)
    for s in range(act.hinges):
        hinge = g.op("Relu", g.op("Sub", g.const(b[s], "apl_b"), z))
        out = g.op("Add", out, g.op("Mul", g.const(a[s], "apl_a"), hinge))
    return out


#: activation name → converter(builder, activation object, input name) -> output name
ACTIVATION_CONVERTERS: dict[str, ActivationConverter] = {
    "identity": _identity,
    "binary_step": _binary_step,
    "logistic": _unary("Sigmoid"),
    "tanh": _unary("Tanh"),
    "arctan": _unary("Atan"),
    "relu": _unary("Relu"),
    "softplus": _softplus,
    "bent_identity": _bent_identity,
    "soft_exponential": _soft_exponential,
    "sinusoid": _unary("Sin"),
    "sinc": _sinc,
    "gaussian": _gaussian,
    "softmax": _unary("Softmax", axis=-1),
    "prelu": _prelu,
    "apl": _apl,
}


def _activation(g: GraphBuilder, act: Any, z: str) -> str:
    convert = ACTIVATION_CONVERTERS.get(act.name)
    if convert is None:
        raise NotImplementedError(f"no ONNX conversion for activation {act.name!r}; known: "
                                  f"{', '.join(sorted(ACTIVATION_CONVERTERS))}")
    if not (act.elementwise and not act.params):  # per-channel axis / parameters: NHWC
        z = g.channels_last(z)
    return convert(g, act, z)


# -- layers --------------------------------------------------------------------------------------
LayerConverter = Callable[[GraphBuilder, Any, str], str]


def _affine(g: GraphBuilder, layer: Any, x: str) -> str:
    z = g.op("MatMul", x, g.const(layer.kernel, f"{layer.name}_kernel"))
    if layer.use_bias:
        z = g.op("Add", z, g.const(layer.bias, f"{layer.name}_bias"))
    return z


def _dense(g: GraphBuilder, layer: Dense, x: str) -> str:
    return _activation(g, layer.activation, _affine(g, layer, x))


def _dropout(g: GraphBuilder, layer: Dropout, x: str) -> str:
    return x  # inverted dropout: the identity at inference


def _activation_layer(g: GraphBuilder, layer: Activation, x: str) -> str:
    return _activation(g, layer.activation, x)


def _maxout(g: GraphBuilder, layer: Maxout, x: str) -> str:
    z = _affine(g, layer, x)
    shape = g.const([-1, layer.units, layer.pieces], "maxout_shape", np.int64)
    pieces = g.op("Reshape", z, shape)
    if g.opset >= 18:
        return g.op("ReduceMax", pieces, g.const([2], "axes", np.int64), keepdims=0)
    return g.op("ReduceMax", pieces, axes=[2], keepdims=0)


def _onnx_pads(layer: Any) -> list[int]:
    """ONNX's [begin_h, begin_w, end_h, end_w] from the layer's (top, bottom, left, right)."""
    pt, pb, pl, pr = layer._pads
    return [pt, pl, pb, pr]


def _conv2d(g: GraphBuilder, layer: Conv2D, x: str) -> str:
    x = g.channels_first(x)
    # Keras's kernel (k_h, k_w, C_in, C_out) → ONNX's (C_out, C_in, k_h, k_w)
    inputs = [x, g.const(layer.kernel.transpose(3, 2, 0, 1), f"{layer.name}_kernel")]
    if layer.use_bias:
        inputs.append(g.const(layer.bias, f"{layer.name}_bias"))
    z = g.op("Conv", *inputs, kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
             pads=_onnx_pads(layer))
    return _activation(g, layer.activation, z)


def _pool(op_type: str, **attrs: Any) -> LayerConverter:
    def convert(g: GraphBuilder, layer: Any, x: str) -> str:
        return g.op(op_type, g.channels_first(x), kernel_shape=list(layer.pool_size),
                    strides=list(layer.strides), pads=_onnx_pads(layer), **attrs)

    return convert


def _flatten(g: GraphBuilder, layer: Flatten, x: str) -> str:
    return g.op("Flatten", g.channels_last(x), axis=1)  # channels-last column order


#: layer class → converter(builder, layer, input name) -> output name
LAYER_CONVERTERS: dict[type[Layer], LayerConverter] = {
    Dense: _dense,
    Dropout: _dropout,
    Activation: _activation_layer,
    Maxout: _maxout,
    Conv2D: _conv2d,
    MaxPool2D: _pool("MaxPool"),
    AveragePool2D: _pool("AveragePool", count_include_pad=0),
    Flatten: _flatten,
    **sequence_converters(_activation),
}


# -- export --------------------------------------------------------------------------------------
def _as_sequential(model: Any) -> Any:
    """The Sequential itself, or the ``model_`` of a fitted thetanet.sklearn estimator."""
    inner = getattr(model, "model_", None)
    return inner if inner is not None and hasattr(inner, "layers") else model


def to_onnx(model: Any, path: str | os.PathLike[str] | None = None, *,
            opset: int = DEFAULT_OPSET, check: bool = True) -> Any:
    """Export a built ``Sequential`` (or a fitted ``thetanet.sklearn`` estimator) to ONNX.

    Args:
        model: the model; its current weights (and learnable activation parameters) are used.
        path: where to write the ``.onnx`` file (atomically); None = only return the proto.
        opset: the ``ai.onnx`` opset version, at least 17.
        check: run ``onnx.checker.check_model`` (with shape inference) before writing.

    Returns:
        the ``onnx.ModelProto``.
    """
    onnx = _require_onnx()
    model = _as_sequential(model)
    if not getattr(model, "built", False):
        raise ValueError("the model is not built yet: fit it or call build(input_dim) first")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < MIN_OPSET:
        raise ValueError(f"opset must be an integer >= {MIN_OPSET}, got {opset!r}")
    if opset > onnx.defs.onnx_opset_version():
        raise ValueError(f"opset {opset} is newer than this onnx package supports "
                         f"({onnx.defs.onnx_opset_version()})")
    g = GraphBuilder(onnx, opset)
    x = INPUT_NAME
    for layer in model.layers:
        convert = LAYER_CONVERTERS.get(type(layer))
        if convert is None:
            raise NotImplementedError(f"no ONNX conversion for layer {type(layer).__name__} "
                                      f"({layer.name}); known: "
                                      f"{', '.join(c.__name__ for c in LAYER_CONVERTERS)}")
        x = convert(g, layer, x)
    x = g.channels_last(x)
    g.nodes.append(onnx.helper.make_node("Identity", [x], [OUTPUT_NAME], name="output_node"))
    graph = onnx.helper.make_graph(
        g.nodes, model.name or "thetanet",
        [onnx.helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT,
                                            ["batch", *model.input_shape])],
        [onnx.helper.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT,
                                            ["batch", *model.layers[-1].output_shape])],
        initializer=g.initializers)
    opsets = [onnx.helper.make_opsetid("", opset)]
    proto = onnx.helper.make_model(graph, opset_imports=opsets, producer_name="thetanet",
                                   producer_version=__version__,
                                   doc_string=model.summary(print_fn=None))
    proto.ir_version = onnx.helper.find_min_ir_version_for(opsets)
    if check:
        onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        atomic_write_bytes(path, proto.SerializeToString())
    return proto


def run_onnxruntime(onnx_model: Any, x: Any) -> np.ndarray:
    """Run an exported model (a path or a ModelProto) on ``x`` with onnxruntime (CPU)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError("running ONNX models needs onnxruntime: pip install "
                          "'thetanet[onnx]'") from exc
    if isinstance(onnx_model, (str, os.PathLike)):
        source: Any = os.fspath(onnx_model)
    else:
        source = onnx_model.SerializeToString()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    (out,) = session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x, dtype=_F32)})
    return out


def max_abs_diff(model: Any, onnx_model: Any, x: Any = None, n: int = 256,
                 seed: int = 0) -> float:
    """max |onnxruntime(x) − model.predict(x)| over ``x`` (default: n standard-normal
    examples of the model's input shape; random ids, some 0, before an Embedding)."""
    model = _as_sequential(model)
    if x is None:
        rng = np.random.default_rng(seed)
        first = model.layers[0]
        x = rng.integers(0, first.vocab, (n, *model.input_shape)) \
            if isinstance(first, Embedding) else rng.standard_normal((n, *model.input_shape))
    x = np.asarray(x, dtype=_F32)
    want = np.asarray(model.predict(x), dtype=np.float64)
    got = np.asarray(run_onnxruntime(onnx_model, x), dtype=np.float64)
    if got.shape != want.shape:
        raise ValueError(f"onnxruntime output has shape {got.shape}, the model's {want.shape}")
    return float(np.max(np.abs(got - want))) if want.size else 0.0
