"""Softmax over the last axis: the classifier's output activation (not a row of the table)."""

from __future__ import annotations

import numpy as np

from thetanet.activations.base import ActivationFunction, as_float
from thetanet.activations.registry import register


@register
class Softmax(ActivationFunction):
    """Softmax over the last axis: a_k = e^(z_k) / Σ_j e^(z_j), computed as e^(z − max z).

    Not elementwise: its Jacobian is diag(a) − a aᵀ, so ``backward`` returns
    a ⊙ (grad − Σ_k grad_k a_k). With cross-entropy the model uses the fused δ = a − y instead.
    """

    name = "softmax"
    equation = "f(x)_k = e^x_k / sum_j e^x_j"
    derivative = "df_k/dx_j = f_k (1[k=j] - f_j)"
    monotonic = False
    range = (0.0, 1.0)
    elementwise = False

    def f(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        z = as_float(z)
        if out is None:
            out = np.empty_like(z)
        np.subtract(z, z.max(axis=-1, keepdims=True), out=out)
        np.exp(out, out=out)
        out /= out.sum(axis=-1, keepdims=True)
        return out

    def df(self, z: np.ndarray) -> np.ndarray:
        raise TypeError("softmax is not elementwise; use backward() for its Jacobian product")

    def backward(self, z: np.ndarray, a: np.ndarray, grad: np.ndarray) -> np.ndarray:
        s = (grad * a).sum(axis=-1, keepdims=True)
        grad -= s
        grad *= a
        return grad
