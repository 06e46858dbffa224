r"""LSTM (Hochreiter & Schmidhuber 1997) in Keras 3's layout and gate order i, f, c, o.

With σ the gate activation (``recurrent_activation``, logistic by default) and g the cell
activation (``activation``, tanh by default), per step:

    z_t = x_t W + h_{t−1} U + b                     W (d, 4u), U (u, 4u), b (4u,): [i | f | c | o]
    i_t = σ(z_i),  f_t = σ(z_f),  c̃_t = g(z_c),  o_t = σ(z_o)
    c_t = f_t ⊙ c_{t−1} + i_t ⊙ c̃_t                 the cell: a sum, so δ flows back unhindered
    h_t = o_t ⊙ g(c_t)

BPTT, from ∂J/∂h_t = ∂J/∂y_t + δ_{t+1} Uᵀ and ∂J/∂c_t carried from step t + 1:

    ∂J/∂c_t += ∂J/∂h_t ⊙ o_t ⊙ g′(c_t)
    δ_o = ∂J/∂h_t ⊙ g(c_t) ⊙ σ′(z_o)      δ_i = ∂J/∂c_t ⊙ c̃_t ⊙ σ′(z_i)
    δ_f = ∂J/∂c_t ⊙ c_{t−1} ⊙ σ′(z_f)     δ_c = ∂J/∂c_t ⊙ i_t ⊙ g′(z_c)
    ∂J/∂c_{t−1} = ∂J/∂c_t ⊙ f_t,          δ_t = [δ_i | δ_f | δ_c | δ_o],   ∂J/∂h_{t−1} = δ_t Uᵀ

``unit_forget_bias=True`` (Keras's default) starts b_f at 1: the cell remembers at first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thetanet.layers.base import register_layer
from thetanet.layers.recurrent import (
    Recurrent,
    apply,
    carry_masked,
    cell_activation,
    derivative,
    split_masked,
)


@register_layer
class LSTM(Recurrent):
    """Long short-term memory. Arguments as :class:`~thetanet.layers.recurrent.Recurrent`,
    plus ``recurrent_activation`` (σ of the gates, logistic) and ``unit_forget_bias``."""

    gates = 4
    state_names = ("h", "c")

    def __init__(self, units: int, activation: Any = "tanh",
                 recurrent_activation: Any = "logistic", unit_forget_bias: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(units, activation, **kwargs)
        self.recurrent_activation = cell_activation(recurrent_activation,
                                                    "LSTM recurrent_activation")
        self.unit_forget_bias = bool(unit_forget_bias)

    def initial_bias(self, rng: np.random.Generator) -> np.ndarray:
        b = super().initial_bias(rng)
        if self.unit_forget_bias:
            u = self.units
            b[u:2 * u] = 1
        return b

    def _forward_steps(self, xw: np.ndarray, mt: np.ndarray | None, states: list[np.ndarray],
                       keep: bool) -> tuple[np.ndarray, list[np.ndarray], Any]:
        steps, batch, _ = xw.shape
        u, dt = self.units, self.dtype
        hs = np.empty((steps + 1, batch, u), dt)
        cs = np.empty((steps + 1, batch, u), dt)
        hs[0], cs[0] = states
        gs = np.empty_like(xw) if keep else np.empty((1, *xw.shape[1:]), dt)  # i f c̃ o
        gcs = np.empty((steps if keep else 1, batch, u), dt)  # g(c_t)
        tmp = np.empty((batch, 4 * u), dt)
        ig = np.empty((batch, u), dt)
        sig, g, rk = self.recurrent_activation, self.activation, self.recurrent_kernel
        for t in range(steps):
            k = t if keep else 0
            z, a = xw[t], gs[k]
            np.dot(hs[t], rk, out=tmp)
            z += tmp
            apply(sig, z[:, :2 * u], a[:, :2 * u])
            apply(g, z[:, 2 * u:3 * u], a[:, 2 * u:3 * u])
            apply(sig, z[:, 3 * u:], a[:, 3 * u:])
            c = cs[t + 1]
            np.multiply(a[:, u:2 * u], cs[t], out=c)  # c_t = f ⊙ c_{t−1} + i ⊙ c̃
            np.multiply(a[:, :u], a[:, 2 * u:3 * u], out=ig)
            c += ig
            apply(g, c, gcs[k])
            np.multiply(a[:, 3 * u:], gcs[k], out=hs[t + 1])  # h_t = o ⊙ g(c_t)
            carry_masked(mt, t, c, cs[t])
            carry_masked(mt, t, hs[t + 1], hs[t])
        return hs, [hs[-1], cs[-1]], (xw, gs, cs, gcs)

    def _backward_steps(self, cache: Any, hs: np.ndarray, d_hs: np.ndarray | None,
                        d_last: list[np.ndarray], mt: np.ndarray | None
                        ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        zs, gs, cs, gcs = cache
        u = self.units
        sig, g = self.recurrent_activation, self.activation
        dz = np.empty_like(zs)
        rkt = np.ascontiguousarray(self.recurrent_kernel.T)
        dh, dc = d_last
        for t in range(zs.shape[0] - 1, -1, -1):
            if d_hs is not None:
                dh = dh + d_hs[t]
            a, z, d = gs[t], zs[t], dz[t]
            dh_real, dh_passed = split_masked(mt, t, dh)
            # ∂J/∂c_t: carried from t + 1, plus through h_t = o ⊙ g(c_t)
            dc = dc + dh_real * a[:, 3 * u:] * derivative(g, cs[t + 1], gcs[t])
            dc_real, dc_passed = split_masked(mt, t, dc)
            np.multiply(dh_real, gcs[t], out=d[:, 3 * u:])  # ∂J/∂o
            np.multiply(dc_real, a[:, 2 * u:3 * u], out=d[:, :u])  # ∂J/∂i
            np.multiply(dc_real, cs[t], out=d[:, u:2 * u])  # ∂J/∂f
            np.multiply(dc_real, a[:, :u], out=d[:, 2 * u:3 * u])  # ∂J/∂c̃
            d[:, :2 * u] *= derivative(sig, z[:, :2 * u], a[:, :2 * u])
            d[:, 3 * u:] *= derivative(sig, z[:, 3 * u:], a[:, 3 * u:])
            d[:, 2 * u:3 * u] *= derivative(g, z[:, 2 * u:3 * u], a[:, 2 * u:3 * u])
            dc = dc_real * a[:, u:2 * u]  # ∂J/∂c_{t−1} = ∂J/∂c_t ⊙ f_t
            dh = np.dot(d, rkt)  # δ_t Uᵀ
            if dh_passed is not None:
                dh += dh_passed
                dc += dc_passed
        return dz, dz, [dh, dc]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(),
                "recurrent_activation": self.recurrent_activation.get_config(),
                "unit_forget_bias": self.unit_forget_bias}
