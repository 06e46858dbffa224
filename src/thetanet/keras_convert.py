r"""Keras 3 ↔ thetanet: convert a Sequential of dense or convolutional layers with their weights.

So the lecture's Keras code and thetanet can be checked against each other::

    from thetanet.keras_convert import from_keras, to_keras

    net = from_keras(keras_model)           # a thetanet.Sequential with the same weights
    keras_again = to_keras(net)             # and back: same predictions

Both directions keep the layer structure: Keras ``Dense(units, activation, use_bias,
kernel_regularizer=L2(λ))`` ↔ ``Dense(units, activation, use_bias, l2=2λ)`` (Keras adds
λ‖W‖², thetanet (λ/2)‖W‖²), ``Dropout(rate)`` ↔ ``Dropout(rate)``, ``Activation(a)`` ↔
``Activation(a)``. The kernel layout is the same in both, (inputs, units).

Convolutional nets (channels-last, Keras's default ``data_format``) convert too: Keras
``Conv2D(filters, kernel_size, strides, padding, activation, use_bias, kernel_regularizer)`` ↔
thetanet ``Conv2D`` (kernel (k_h, k_w, C_in, C_out) in both, "same" padding split the same
way), ``MaxPooling2D`` ↔ ``MaxPool2D``, ``AveragePooling2D`` ↔ ``AveragePool2D`` (padding not
averaged in either), ``Flatten`` ↔ ``Flatten`` (both channels-last). Dilated or grouped
convolutions and channels-first layers raise ``ValueError``.

Sequence models convert too: Keras ``Embedding(input_dim, output_dim, mask_zero)`` ↔
``Embedding``, ``Masking(mask_value)`` ↔ ``Masking``, ``SimpleRNN`` / ``LSTM`` / ``GRU`` (units,
activation, recurrent_activation, use_bias, unit_forget_bias, return_sequences,
go_backwards; GRU with ``reset_after=True``) ↔ the thetanet layers of the same name, whose
weights have Keras 3's layout and gate order (kernel, recurrent_kernel, bias), and
``Bidirectional(layer, merge_mode)`` (concat, sum, ave) ↔ ``Bidirectional``; a Dense layer
after a ``return_sequences`` layer is applied at every step in both. Stateful layers,
recurrent dropout and regularisers on recurrent layers raise ``ValueError``.

Activations: Keras's own ``linear``, ``sigmoid``, ``tanh``, ``relu``, ``softplus`` and
``softmax`` map to thetanet's identity, logistic, tanh, relu, softplus and softmax. The other
non-learnable thetanet activations (binary_step, arctan, bent_identity, soft_exponential with a
fixed α, sinusoid, sinc, gaussian) become Keras callables written with ``keras.ops``; they
carry their thetanet config (attribute ``thetanet_activation``), so converting back restores
them. Learnable activations (PReLU, APL, learnable SoftExponential), Maxout and Keras
activations without a thetanet counterpart (gelu, elu, …) raise ``ValueError``.

Keras is imported only when these functions are called. With no ``KERAS_BACKEND`` set, no
TensorFlow and PyTorch installed, the torch backend is chosen (``KERAS_BACKEND=torch``).
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from thetanet import activations as _activations
from thetanet.layers import (
    GRU,
    LSTM,
    Activation,
    AveragePool2D,
    Bidirectional,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    Masking,
    MaxPool2D,
    Recurrent,
    SimpleRNN,
)
from thetanet.model import Sequential

__all__ = ["from_keras", "keras_activation", "to_keras"]

#: Keras activation name → thetanet activation name.
KERAS_TO_THETANET = {"linear": "identity", "sigmoid": "logistic", "tanh": "tanh",
                     "relu": "relu", "softplus": "softplus", "softmax": "softmax"}
THETANET_TO_KERAS = {v: k for k, v in KERAS_TO_THETANET.items()}


def import_keras() -> Any:
    """Import Keras 3 (choosing the torch backend when nothing else is configured/available)."""
    if ("keras" not in sys.modules and "KERAS_BACKEND" not in os.environ
            and importlib.util.find_spec("tensorflow") is None
            and importlib.util.find_spec("torch") is not None):
        os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras
    except ImportError as exc:
        raise ImportError("Keras conversion needs Keras 3: pip install keras (and a backend, "
                          "e.g. torch with KERAS_BACKEND=torch)") from exc
    if int(keras.__version__.split(".")[0]) < 3:
        raise ImportError(f"Keras conversion needs Keras 3, found {keras.__version__}")
    return keras


# -- thetanet activations written with keras.ops -------------------------------------------------
def _ops_activation(config: dict[str, Any], ops: Any) -> Callable[[Any], Any]:
    """The thetanet activation ``config`` as a function of a Keras tensor."""
    name = config["name"]
    if name == "binary_step":
        return lambda x: ops.cast(ops.greater_equal(x, 0), x.dtype)
    if name == "arctan":
        return lambda x: ops.arctan(x)
    if name == "bent_identity":
        return lambda x: 0.5 * (x * (x / (ops.sqrt(x * x + 1) + 1))) + x
    if name == "sinusoid":
        return lambda x: ops.sin(x)
    if name == "gaussian":
        return lambda x: ops.exp(-(x * x))
    if name == "sinc":
        def sinc(x: Any) -> Any:
            zero = ops.equal(x, 0)
            safe = ops.where(zero, ops.ones_like(x), x)
            return ops.where(zero, ops.ones_like(x), ops.sin(safe) / safe)

        return sinc
    if name == "soft_exponential":
        alpha = float(config.get("alpha", 0.0))
        u_min = float(config.get("u_min", 1e-3))
        if alpha == 0:
            return lambda x: x
        if alpha > 0:
            big = float(np.finfo(np.float32).max)
            return lambda x: ops.clip(ops.expm1(alpha * x) / alpha + alpha, -big, big)
        x_c = (1 - u_min) / alpha - alpha
        line0 = -math.log(u_min) / alpha

        def soft_exponential(x: Any) -> Any:
            s = -alpha * (x + alpha)
            inside = ops.greater(s, u_min - 1)
            s_in = ops.where(inside, s, ops.zeros_like(s))
            return ops.where(inside, -ops.log1p(s_in) / alpha, line0 + (x - x_c) / u_min)

        return soft_exponential
    raise ValueError(f"activation {name!r} has no Keras counterpart here")


def keras_activation(activation: Any) -> Any:
    """A thetanet activation (name, config or instance) as a Keras activation (name/callable).

    Raises ValueError for learnable activations (their parameters are weights Keras's
    activation functions cannot hold).
    """
    act = _activations.get(activation)
    if act.learnable or act.params:
        raise ValueError(f"learnable activation {act.name!r} cannot be a Keras activation "
                         "function; only fixed activations convert")
    if act.name in THETANET_TO_KERAS:
        return THETANET_TO_KERAS[act.name]
    keras = import_keras()
    config = act.get_config()
    fn = _ops_activation(config, keras.ops)
    fn.__name__ = f"thetanet_{act.name}"
    fn.thetanet_activation = config  # type: ignore[attr-defined]
    return fn


def _thetanet_activation(fn: Any, keras: Any) -> Any:
    """A Keras activation function as a thetanet activation config or name."""
    config = getattr(fn, "thetanet_activation", None)
    if config is not None:
        return dict(config)
    name = getattr(fn, "__name__", None)
    if name in KERAS_TO_THETANET:
        try:
            same = keras.activations.get(name) is fn
        except (ValueError, TypeError):
            same = False
        if same:
            return KERAS_TO_THETANET[name]
    raise ValueError(f"Keras activation {name or fn!r} has no thetanet equivalent; supported: "
                     f"{', '.join(sorted(KERAS_TO_THETANET))} and thetanet's own "
                     "(made by to_keras)")


# -- conversions ---------------------------------------------------------------------------------
def _keras_l2(regularizer: Any, layer_name: str) -> float:
    """thetanet's l2 for a Keras kernel regularizer: L2(λ) ↔ l2 = 2λ."""
    if regularizer is None:
        return 0.0
    cfg = regularizer.get_config()
    if set(cfg) - {"l2", "l1"} or float(cfg.get("l1", 0.0)) != 0.0:
        raise ValueError(f"Keras layer {layer_name}: only an L2 kernel regularizer converts, "
                         f"got {type(regularizer).__name__}({cfg})")
    return 2.0 * float(cfg.get("l2", 0.0))


def _check_channels_last(kl: Any) -> None:
    if getattr(kl, "data_format", "channels_last") != "channels_last":
        raise ValueError(f"Keras layer {kl.name}: only channels_last data converts, got "
                         f"data_format={kl.data_format!r}")


def _from_keras_spatial(kl: Any, keras: Any) -> Any:
    """The thetanet layer for a Keras Conv2D, pooling or Flatten layer (None for others)."""
    if isinstance(kl, keras.layers.Flatten):
        _check_channels_last(kl)
        return Flatten(name=kl.name)
    pools = {keras.layers.MaxPooling2D: MaxPool2D, keras.layers.AveragePooling2D: AveragePool2D}
    for kcls, cls in pools.items():
        if isinstance(kl, kcls):
            _check_channels_last(kl)
            return cls(tuple(kl.pool_size), tuple(kl.strides), kl.padding, name=kl.name)
    if not isinstance(kl, keras.layers.Conv2D):
        return None
    _check_channels_last(kl)
    if tuple(kl.dilation_rate) != (1, 1) or int(kl.groups) != 1:
        raise ValueError(f"Keras layer {kl.name}: dilated or grouped convolutions do not "
                         "convert")
    return Conv2D(int(kl.filters), tuple(kl.kernel_size), tuple(kl.strides), kl.padding,
                  activation=_thetanet_activation(kl.activation, keras),
                  use_bias=bool(kl.use_bias), l2=_keras_l2(kl.kernel_regularizer, kl.name),
                  name=kl.name)


_RNN_NAMES = ("SimpleRNN", "LSTM", "GRU")


def _from_keras_rnn(kl: Any, keras: Any) -> Any:
    """The thetanet layer for a Keras SimpleRNN, LSTM or GRU."""
    kind = type(kl).__name__
    cfg = kl.get_config()
    if cfg.get("stateful") or cfg.get("dropout") or cfg.get("recurrent_dropout"):
        raise ValueError(f"Keras layer {kl.name}: stateful layers and recurrent dropout do "
                         "not convert")
    if any(cfg.get(k) for k in ("kernel_regularizer", "recurrent_regularizer",
                                "bias_regularizer", "activity_regularizer")):
        raise ValueError(f"Keras layer {kl.name}: regularisers on recurrent layers do not "
                         "convert")
    if cfg.get("return_state"):
        raise ValueError(f"Keras layer {kl.name}: return_state does not fit a Sequential")
    args: dict[str, Any] = {
        "activation": _thetanet_activation(kl.activation, keras),
        "use_bias": bool(cfg["use_bias"]), "return_sequences": bool(cfg["return_sequences"]),
        "go_backwards": bool(cfg["go_backwards"]),
        "zero_output_for_mask": bool(cfg.get("zero_output_for_mask", False)), "name": kl.name}
    if kind != "SimpleRNN":
        args["recurrent_activation"] = _thetanet_activation(kl.recurrent_activation, keras)
    if kind == "LSTM":
        args["unit_forget_bias"] = bool(cfg["unit_forget_bias"])
    if kind == "GRU" and not cfg.get("reset_after", True):
        raise ValueError(f"Keras layer {kl.name}: only GRU(reset_after=True) converts")
    return {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}[kind](int(cfg["units"]), **args)


def _from_keras_sequence(kl: Any, keras: Any) -> Any:
    """The thetanet layer for a Keras Embedding, Masking, recurrent or Bidirectional layer
    (None for others)."""
    if isinstance(kl, keras.layers.Embedding):
        if getattr(kl, "embeddings_regularizer", None) is not None:
            raise ValueError(f"Keras layer {kl.name}: a regularised Embedding does not convert")
        return Embedding(int(kl.input_dim), int(kl.output_dim), mask_zero=bool(kl.mask_zero),
                         name=kl.name)
    if isinstance(kl, keras.layers.Masking):
        return Masking(float(kl.mask_value), name=kl.name)
    if isinstance(kl, keras.layers.Bidirectional):
        if type(kl.forward_layer).__name__ not in _RNN_NAMES:
            raise ValueError(f"Keras layer {kl.name}: Bidirectional converts around SimpleRNN, "
                             "LSTM or GRU only")
        inner = _from_keras_rnn(kl.forward_layer, keras)
        inner.name = None
        return Bidirectional(inner, kl.merge_mode, name=kl.name)
    if type(kl).__name__ in _RNN_NAMES and isinstance(kl, keras.layers.RNN):
        return _from_keras_rnn(kl, keras)
    return None


def _to_keras_sequence(layer: Any, keras: Any, dtype: str) -> Any:
    """The Keras layer for a thetanet sequence layer (None for others)."""
    if isinstance(layer, Embedding):
        return keras.layers.Embedding(layer.vocab, layer.width, mask_zero=layer.mask_zero,
                                      dtype=dtype, name=layer.name)
    if isinstance(layer, Masking):
        return keras.layers.Masking(layer.mask_value, dtype=dtype, name=layer.name)
    if isinstance(layer, Bidirectional):
        inner = _to_keras_rnn(layer.forward_layer, keras, dtype)
        return keras.layers.Bidirectional(inner, merge_mode=layer.merge_mode, dtype=dtype,
                                          name=layer.name)
    if isinstance(layer, Recurrent):
        return _to_keras_rnn(layer, keras, dtype, layer.name)
    return None


def _to_keras_rnn(layer: Any, keras: Any, dtype: str, name: str | None = None) -> Any:
    kind = type(layer).__name__
    if kind not in _RNN_NAMES:
        raise ValueError(f"layer {layer.name} ({kind}) has no Keras counterpart here")
    args: dict[str, Any] = {
        "activation": keras_activation(layer.activation), "use_bias": layer.use_bias,
        "return_sequences": layer.return_sequences, "go_backwards": layer.go_backwards,
        "dtype": dtype}
    if name is not None:
        args["name"] = name
    if kind != "SimpleRNN":
        args["recurrent_activation"] = keras_activation(layer.recurrent_activation)
    if kind == "LSTM":
        args["unit_forget_bias"] = layer.unit_forget_bias
    return getattr(keras.layers, kind)(layer.units, **args)


def from_keras(keras_model: Any, dtype: Any = None) -> Sequential:
    """A built thetanet ``Sequential`` with the layers and weights of a Keras Sequential.

    Args:
        keras_model: a built ``keras.Sequential`` of Dense, Dropout, Activation, Conv2D,
            MaxPooling2D, AveragePooling2D and Flatten layers.
        dtype: the thetanet model's dtype (default: the Keras model's, float32 or float64).
    """
    keras = import_keras()
    if not isinstance(keras_model, keras.Sequential):
        raise TypeError(f"expected a keras.Sequential, got {type(keras_model).__name__}")
    if not keras_model.built or not keras_model.inputs:
        raise ValueError("the Keras model is not built: give it a keras.Input(shape=(d,))")
    shape = tuple(keras_model.inputs[0].shape)
    if len(shape) < 2 or any(d is None for d in shape[1:]):
        raise ValueError(f"only inputs of a fixed shape per example convert, e.g. (batch, "
                         f"features) or (batch, height, width, channels), got {shape}")
    layers: list[Any] = []
    weights: list[np.ndarray] = []
    dtypes = set()
    for kl in keras_model.layers:
        kind = type(kl).__name__
        if isinstance(kl, keras.layers.Dense):
            layers.append(Dense(int(kl.units), _thetanet_activation(kl.activation, keras),
                                use_bias=bool(kl.use_bias),
                                l2=_keras_l2(kl.kernel_regularizer, kl.name), name=kl.name))
            weights += [np.asarray(w) for w in kl.get_weights()]
            dtypes.add(np.dtype(kl.variable_dtype))
        elif isinstance(kl, keras.layers.Dropout):
            if getattr(kl, "noise_shape", None) is not None:
                raise ValueError(f"Keras layer {kl.name}: Dropout with noise_shape does not "
                                 "convert")
            layers.append(Dropout(float(kl.rate), name=kl.name))
        elif isinstance(kl, keras.layers.Activation):
            layers.append(Activation(_thetanet_activation(kl.activation, keras), name=kl.name))
        elif ((layer := _from_keras_spatial(kl, keras)) is not None
              or (layer := _from_keras_sequence(kl, keras)) is not None):
            layers.append(layer)
            weights += [np.asarray(w) for w in kl.get_weights()]
            if layer.params:
                dtypes.add(np.dtype(kl.variable_dtype))
        else:
            raise ValueError(f"Keras layer {kl.name} ({kind}) does not convert; only Dense, "
                             "Dropout, Activation, Conv2D, MaxPooling2D, AveragePooling2D, "
                             "Flatten, Embedding, Masking, SimpleRNN, LSTM, GRU and "
                             "Bidirectional layers do")
    if dtype is None:
        dtype = np.float64 if dtypes == {np.dtype(np.float64)} else np.float32
    model = Sequential(layers, dtype=dtype, name=keras_model.name)
    model.build(int(shape[1]) if len(shape) == 2 else tuple(int(d) for d in shape[1:]))
    model.set_weights([w.astype(model.dtype) for w in weights])
    return model


def to_keras(model: Any) -> Any:
    """A built ``keras.Sequential`` with the layers and weights of a thetanet ``Sequential``.

    Dense, Dropout, Activation, Conv2D, MaxPool2D, AveragePool2D and Flatten layers with
    non-learnable activations convert.
    """
    keras = import_keras()
    model = getattr(model, "model_", model)  # a fitted thetanet.sklearn estimator
    if not getattr(model, "built", False):
        raise ValueError("the model is not built yet: fit it or call build(input_dim) first")
    dtype = model.dtype.name
    ids = isinstance(model.layers[0], Embedding)  # integer ids in
    klayers: list[Any] = [keras.Input(shape=tuple(model.input_shape),
                                      dtype="int32" if ids else dtype)]
    weights: list[tuple[int, list[np.ndarray]]] = []
    for layer in model.layers:
        if isinstance(layer, Dense):
            reg = keras.regularizers.L2(layer.l2 / 2) if layer.l2 else None
            weights.append((len(klayers), [p.copy() for p in layer.params]))
            klayers.append(keras.layers.Dense(layer.units,
                                              activation=keras_activation(layer.activation),
                                              use_bias=layer.use_bias, kernel_regularizer=reg,
                                              dtype=dtype, name=layer.name))
        elif isinstance(layer, Dropout):
            klayers.append(keras.layers.Dropout(layer.rate, name=layer.name))
        elif isinstance(layer, Activation):
            klayers.append(keras.layers.Activation(keras_activation(layer.activation),
                                                   dtype=dtype, name=layer.name))
        elif isinstance(layer, Conv2D):
            reg = keras.regularizers.L2(layer.l2 / 2) if layer.l2 else None
            weights.append((len(klayers), [p.copy() for p in layer.params]))
            klayers.append(keras.layers.Conv2D(
                layer.filters, layer.kernel_size, layer.strides, layer.padding,
                activation=keras_activation(layer.activation), use_bias=layer.use_bias,
                kernel_regularizer=reg, dtype=dtype, name=layer.name))
        elif isinstance(layer, (MaxPool2D, AveragePool2D)):
            kcls = keras.layers.MaxPooling2D if isinstance(layer, MaxPool2D) else \
                keras.layers.AveragePooling2D
            klayers.append(kcls(layer.pool_size, layer.strides, layer.padding, dtype=dtype,
                                name=layer.name))
        elif isinstance(layer, Flatten):
            klayers.append(keras.layers.Flatten(dtype=dtype, name=layer.name))
        elif (kl := _to_keras_sequence(layer, keras, dtype)) is not None:
            if layer.params:
                weights.append((len(klayers), [p.copy() for p in layer.params]))
            klayers.append(kl)
        else:
            raise ValueError(f"layer {layer.name} ({type(layer).__name__}) has no Keras "
                             "counterpart here; only Dense, Dropout, Activation, Conv2D, the "
                             "pools, Flatten and the sequence layers convert")
    kmodel = keras.Sequential(klayers, name=model.name or "thetanet")
    for index, ws in weights:
        kmodel.layers[index - 1].set_weights(ws)
    return kmodel
