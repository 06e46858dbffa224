r"""SimpleRNN: the plainest recurrent layer, Elman's network, in Keras 3's layout.

    z_t = x_t W + h_{t−1} U + b,      h_t = g(z_t)        (g = tanh by default)

BPTT (see :mod:`thetanet.layers.recurrent` for the time loop and the sums over the steps):

    ∂J/∂h_t = ∂J/∂y_t + δ_{t+1} Uᵀ,    δ_t = ∂J/∂h_t ⊙ g′(z_t)

exactly the lecture's δ^(l) = (Θ^(l))ᵀ δ^(l+1) ⊙ g′(z^(l)), with U in the place of Θ and the
layers of the unrolled network being the steps. Weights: kernel (d, u), recurrent_kernel
(u, u), bias (u,).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thetanet.layers.base import register_layer
from thetanet.layers.recurrent import Recurrent, apply, carry_masked, derivative, split_masked


@register_layer
class SimpleRNN(Recurrent):
    """h_t = g(x_t W + h_{t−1} U + b); arguments: see
    :class:`~thetanet.layers.recurrent.Recurrent`."""

    gates = 1

    def _forward_steps(self, xw: np.ndarray, mt: np.ndarray | None, states: list[np.ndarray],
                       keep: bool) -> tuple[np.ndarray, list[np.ndarray], Any]:
        steps, batch, u = xw.shape
        hs = np.empty((steps + 1, batch, u), self.dtype)
        hs[0] = states[0]
        tmp = np.empty((batch, u), self.dtype)
        act, rk = self.activation, self.recurrent_kernel
        for t in range(steps):
            z = xw[t]  # z_t = x_t W + b + h_{t−1} U, in place
            np.dot(hs[t], rk, out=tmp)
            z += tmp
            apply(act, z, hs[t + 1])
            carry_masked(mt, t, hs[t + 1], hs[t])
        return hs, [hs[-1]], xw

    def _backward_steps(self, cache: Any, hs: np.ndarray, d_hs: np.ndarray | None,
                        d_last: list[np.ndarray], mt: np.ndarray | None
                        ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        zs = cache
        dz = np.empty_like(zs)
        rkt = np.ascontiguousarray(self.recurrent_kernel.T)
        dh = d_last[0]
        for t in range(zs.shape[0] - 1, -1, -1):
            if d_hs is not None:
                dh = dh + d_hs[t]  # ∂J/∂h_t: from the output above and from step t + 1
            real, passed = split_masked(mt, t, dh)
            np.multiply(real, derivative(self.activation, zs[t], hs[t + 1]), out=dz[t])
            dh = np.dot(dz[t], rkt)  # δ_t Uᵀ: carried to h_{t−1}
            if passed is not None:
                dh += passed
        return dz, dz, [dh]
