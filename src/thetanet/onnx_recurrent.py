r"""ONNX export of the sequence layers, as an unrolled graph (used by :mod:`thetanet.onnx`).

Each recurrent layer becomes its equations written out for the T steps of the model's fixed
sequence length, in standard ``ai.onnx`` operators, so any cell or gate activation with an
ONNX converter exports (ONNX's own LSTM/GRU/RNN operators know only a few activations and no
arbitrary masks):

==================  =======================================================================
thetanet            ONNX
==================  =======================================================================
Embedding           Gather(E, Cast(ids, int64)); with ``mask_zero`` the mask ids ≠ 0
Masking             the mask: ReduceMax over the features of (x ≠ mask_value)
SimpleRNN, LSTM,    x W + b for all steps (one MatMul), then per step t: Gather step t,
GRU                 MatMul(h, U), the gates as Slices of z_t, their activations, and
                    h_t = Where(mask_t, new h, h_{t−1}) (c_t alike)
Bidirectional       both directions, the backward one's outputs re-ordered, Concat / Add
==================  =======================================================================

The mask travels on the builder (``g.mask``, a bool [batch, T] tensor name, or None) from the
layer that makes it to the layers that use it, as :meth:`Layer.compute_mask` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from thetanet.layers import GRU, LSTM, Bidirectional, Embedding, Masking, SimpleRNN

#: converter(builder, activation object, input name) -> output name (thetanet.onnx's)
Activate = Callable[[Any, Any, str], str]


def _ints(g: Any, values: list[int]) -> str:
    return g.const(values, "ints", np.int64)


def _slice(g: Any, z: str, start: int, stop: int) -> str:
    """Columns start:stop of a [batch, n] tensor."""
    return g.op("Slice", z, _ints(g, [start]), _ints(g, [stop]), _ints(g, [1]))


def _step(g: Any, x: str, t: int) -> str:
    """Step t of a [batch, T, n] tensor: [batch, n]."""
    return g.op("Gather", x, g.const(t, "t", np.int64), axis=1)


def _embedding(g: Any, layer: Embedding, x: str) -> str:
    ids = g.op("Cast", x, to=g.onnx.TensorProto.INT64)
    if layer.mask_zero:
        real = g.op("Not", g.op("Equal", ids, g.const(0, "zero", np.int64)))
        g.mask = real if g.mask is None else g.op("And", g.mask, real)
    return g.op("Gather", g.const(layer.embeddings, f"{layer.name}_embeddings"), ids, axis=0)


def _masking(g: Any, layer: Masking, x: str) -> str:
    differs = g.op("Cast", g.op("Not", g.op("Equal", x, g.scalar(layer.mask_value))),
                   to=g.onnx.TensorProto.FLOAT)
    if g.opset >= 18:
        most = g.op("ReduceMax", differs, _ints(g, [2]), keepdims=0)
    else:
        most = g.op("ReduceMax", differs, axes=[2], keepdims=0)
    real = g.op("Cast", most, to=g.onnx.TensorProto.BOOL)
    g.mask = real if g.mask is None else g.op("And", g.mask, real)
    return x


class _Cell:
    """One recurrent layer's steps written as ONNX nodes."""

    def __init__(self, g: Any, layer: Any, activate: Activate) -> None:
        self.g, self.layer, self.activate, self.u = g, layer, activate, layer.units
        self.rk = g.const(layer.recurrent_kernel, f"{layer.name}_recurrent_kernel")
        self.b_rec = None
        if isinstance(layer, GRU) and layer.use_bias:
            self.b_rec = g.const(layer.bias[1], f"{layer.name}_recurrent_bias")

    def gate(self, z: str, k: int, act: Any) -> str:
        return self.activate(self.g, act, _slice(self.g, z, k * self.u, (k + 1) * self.u))

    def step(self, xw: str, h: str, c: str | None) -> tuple[str, str | None]:
        g, ly = self.g, self.layer
        rec = g.op("MatMul", h, self.rk)
        if isinstance(ly, SimpleRNN):
            return self.activate(g, ly.activation, g.op("Add", xw, rec)), None
        if isinstance(ly, LSTM):
            z, sig = g.op("Add", xw, rec), ly.recurrent_activation
            i, f = self.gate(z, 0, sig), self.gate(z, 1, sig)
            cand, o = self.gate(z, 2, ly.activation), self.gate(z, 3, sig)
            assert c is not None
            c_new = g.op("Add", g.op("Mul", f, c), g.op("Mul", i, cand))
            return g.op("Mul", o, self.activate(g, ly.activation, c_new)), c_new
        if self.b_rec is not None:  # GRU, reset_after: r ⊙ (h U + b_rec)
            rec = g.op("Add", rec, self.b_rec)
        zr = g.op("Add", _slice(g, xw, 0, 2 * self.u), _slice(g, rec, 0, 2 * self.u))
        zg, r = self.gate(zr, 0, ly.recurrent_activation), self.gate(zr, 1,
                                                                     ly.recurrent_activation)
        pre = g.op("Add", _slice(g, xw, 2 * self.u, 3 * self.u),
                   g.op("Mul", r, _slice(g, rec, 2 * self.u, 3 * self.u)))
        hh = self.activate(g, ly.activation, pre)
        return g.op("Add", hh, g.op("Mul", zg, g.op("Sub", h, hh))), None


def _run(g: Any, layer: Any, x: str, mask: str | None, activate: Activate) -> list[str]:
    """The layer's outputs h_t in processing order (without ``zero_output_for_mask`` the last
    one is the final state)."""
    steps = layer.input_shape[0]
    xw = g.op("MatMul", x, g.const(layer.kernel, f"{layer.name}_kernel"))
    if layer.use_bias:
        xw = g.op("Add", xw, g.const(layer.input_bias(), f"{layer.name}_bias"))
    zeros = g.const(np.zeros((layer.kernel.shape[0], layer.units)), "zeros")
    h = g.op("MatMul", _step(g, x, 0), zeros)  # h_0 = 0, [batch, u]
    c = h if isinstance(layer, LSTM) else None
    cell, outs = _Cell(g, layer, activate), []
    order = range(steps - 1, -1, -1) if layer.go_backwards else range(steps)
    for t in order:
        h_new, c_new = cell.step(_step(g, xw, t), h, c)
        if mask is not None:  # padded steps keep the state
            m = g.op("Unsqueeze", _step(g, mask, t), _ints(g, [1]))
            h_new = g.where(m, h_new, h)
            c_new = None if c is None else g.where(m, c_new, c)  # type: ignore[arg-type]
            if layer.zero_output_for_mask and layer.return_sequences:
                outs.append(g.where(m, h_new, g.scalar(0.0)))
            else:
                outs.append(h_new)
        else:
            outs.append(h_new)
        h, c = h_new, c_new
    return outs


def _stack(g: Any, outs: list[str]) -> str:
    """[batch, T, u] from T tensors [batch, u]."""
    return g.op("Concat", *(g.op("Unsqueeze", o, _ints(g, [1])) for o in outs), axis=1)


def _recurrent(activate: Activate) -> Callable[[Any, Any, str], str]:
    def convert(g: Any, layer: Any, x: str) -> str:
        mask = g.mask
        outs = _run(g, layer, x, mask, activate)
        if not layer.return_sequences:
            g.mask = None
            return outs[-1]
        if mask is not None and layer.go_backwards:  # outputs come last step first
            steps = layer.input_shape[0]
            rev = g.const(list(range(steps - 1, -1, -1)), "rev", np.int64)
            g.mask = g.op("Gather", mask, rev, axis=1)
        return _stack(g, outs)

    return convert


def _bidirectional(activate: Activate) -> Callable[[Any, Any, str], str]:
    def convert(g: Any, layer: Bidirectional, x: str) -> str:
        mask = g.mask
        fwd = _run(g, layer.forward_layer, x, mask, activate)
        bwd = _run(g, layer.backward_layer, x, mask, activate)
        if layer.return_sequences:
            a, b = _stack(g, fwd), _stack(g, bwd[::-1])  # backward outputs in time order
        else:
            a, b = fwd[-1], bwd[-1]
            g.mask = None
        if layer.merge_mode == "concat":
            return g.op("Concat", a, b, axis=-1)
        out = g.op("Add", a, b)
        return g.op("Mul", out, g.scalar(0.5)) if layer.merge_mode == "ave" else out

    return convert


def sequence_converters(activate: Activate) -> dict[type, Callable[[Any, Any, str], str]]:
    """Layer class → converter, for :data:`thetanet.onnx.LAYER_CONVERTERS`."""
    rnn = _recurrent(activate)
    return {Embedding: _embedding, Masking: _masking, SimpleRNN: rnn, LSTM: rnn, GRU: rnn,
            Bidirectional: _bidirectional(activate)}
