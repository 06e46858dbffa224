r"""GRU (Cho et al. 2014) as Keras 3 computes it by default (``reset_after=True``, gates z, r, h;
the same equations as PyTorch's GRU, whose gate order is r, z, n).

With σ the gate activation (logistic) and g the candidate's (tanh), per step:

    x̂_t = x_t W + b_in                       W (d, 3u): [z | r | h],   bias (2, 3u) = [b_in; b_rec]
    r̂_t = h_{t−1} U + b_rec                  U (u, 3u)
    z_t = σ(x̂_z + r̂_z),   r_t = σ(x̂_r + r̂_r)
    h̃_t = g(x̂_h + r_t ⊙ r̂_h)                the reset gate scales U's contribution, after it
    h_t = z_t ⊙ h_{t−1} + (1 − z_t) ⊙ h̃_t

BPTT, from ∂J/∂h_t = ∂J/∂y_t + (carried from t + 1):

    δ_h = ∂J/∂h_t ⊙ (1 − z_t) ⊙ g′(·)        δ_z = ∂J/∂h_t ⊙ (h_{t−1} − h̃_t) ⊙ σ′(·)
    δ_r = δ_h ⊙ r̂_h ⊙ σ′(·)
    δ of x̂_t = [δ_z | δ_r | δ_h],            δ of r̂_t = [δ_z | δ_r | δ_h ⊙ r_t]
    ∂J/∂h_{t−1} = ∂J/∂h_t ⊙ z_t + (δ of r̂_t) Uᵀ

so ∂J/∂W and b_in sum the first δ over the steps, ∂J/∂U and b_rec the second.
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
class GRU(Recurrent):
    """Gated recurrent unit. Arguments as :class:`~thetanet.layers.recurrent.Recurrent`, plus
    ``recurrent_activation`` (σ of the gates, logistic) and ``reset_after`` (only True, Keras
    3's default and PyTorch's formulation)."""

    gates = 3

    def __init__(self, units: int, activation: Any = "tanh",
                 recurrent_activation: Any = "logistic", reset_after: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(units, activation, **kwargs)
        if not reset_after:
            raise ValueError("GRU supports reset_after=True only (Keras 3's default, "
                             "PyTorch's GRU)")
        self.recurrent_activation = cell_activation(recurrent_activation,
                                                    "GRU recurrent_activation")
        self.reset_after = True

    def bias_shape(self) -> tuple[int, ...]:
        return (2, 3 * self.units)

    def input_bias(self) -> np.ndarray:
        return self.bias[0]

    def bias_grads(self, d_xw: np.ndarray, d_rec: np.ndarray) -> None:
        np.add.reduce(d_xw, axis=0, out=self.d_bias[0])
        np.add.reduce(d_rec, axis=0, out=self.d_bias[1])

    def _forward_steps(self, xw: np.ndarray, mt: np.ndarray | None, states: list[np.ndarray],
                       keep: bool) -> tuple[np.ndarray, list[np.ndarray], Any]:
        steps, batch, _ = xw.shape
        u, dt = self.units, self.dtype
        hs = np.empty((steps + 1, batch, u), dt)
        hs[0] = states[0]
        n = steps if keep else 1
        rec = np.empty((n, batch, 3 * u), dt)  # r̂_t = h_{t−1} U + b_rec
        gs = np.empty((n, batch, 3 * u), dt)  # z, r, h̃
        sig, g, rk = self.recurrent_activation, self.activation, self.recurrent_kernel
        b_rec = self.bias[1] if self.use_bias else None
        tmp = np.empty((batch, u), dt)
        for t in range(steps):
            k = t if keep else 0
            x, r, a = xw[t], rec[k], gs[k]
            np.dot(hs[t], rk, out=r)
            if b_rec is not None:
                r += b_rec
            x[:, :2 * u] += r[:, :2 * u]  # z, r pre-activations (in place in x̂)
            apply(sig, x[:, :2 * u], a[:, :2 * u])
            np.multiply(a[:, u:2 * u], r[:, 2 * u:], out=tmp)
            x[:, 2 * u:] += tmp  # x̂_h + r ⊙ r̂_h
            apply(g, x[:, 2 * u:], a[:, 2 * u:])
            h = hs[t + 1]  # h = h̃ + z ⊙ (h_{t−1} − h̃)
            np.subtract(hs[t], a[:, 2 * u:], out=h)
            h *= a[:, :u]
            h += a[:, 2 * u:]
            carry_masked(mt, t, h, hs[t])
        return hs, [hs[-1]], (xw, rec, gs)

    def _backward_steps(self, cache: Any, hs: np.ndarray, d_hs: np.ndarray | None,
                        d_last: list[np.ndarray], mt: np.ndarray | None
                        ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        zs, rec, gs = cache
        u = self.units
        sig, g = self.recurrent_activation, self.activation
        dx = np.empty_like(zs)
        dr = np.empty_like(zs)
        rkt = np.ascontiguousarray(self.recurrent_kernel.T)
        dh = d_last[0]
        for t in range(zs.shape[0] - 1, -1, -1):
            if d_hs is not None:
                dh = dh + d_hs[t]
            a, z, dxt, drt = gs[t], zs[t], dx[t], dr[t]
            real, passed = split_masked(mt, t, dh)
            zg, hh = a[:, :u], a[:, 2 * u:]
            np.multiply(real, 1 - zg, out=dxt[:, 2 * u:])
            dxt[:, 2 * u:] *= derivative(g, z[:, 2 * u:], hh)  # δ_h
            np.multiply(real, hs[t] - hh, out=dxt[:, :u])  # ∂J/∂z
            np.multiply(dxt[:, 2 * u:], rec[t][:, 2 * u:], out=dxt[:, u:2 * u])  # ∂J/∂r
            dxt[:, :2 * u] *= derivative(sig, z[:, :2 * u], a[:, :2 * u])
            drt[:, :2 * u] = dxt[:, :2 * u]
            np.multiply(dxt[:, 2 * u:], a[:, u:2 * u], out=drt[:, 2 * u:])
            dh_prev = np.dot(drt, rkt)
            dh_prev += real * zg
            if passed is not None:
                dh_prev += passed
            dh = dh_prev
        return dx, dr, [dh]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(),
                "recurrent_activation": self.recurrent_activation.get_config(),
                "reset_after": self.reset_after}
