r"""Gradient checking: backprop against central differences.

For every parameter θ_i: ∂J/∂θ_i ≈ (J(θ + ε e_i) − J(θ − ε e_i)) / 2ε. The error per parameter
array is the lecture's ‖g_num − g_bp‖ / (‖g_num‖ + ‖g_bp‖); :func:`gradcheck` returns the max
over arrays. Use a float64 model: in float32 the differences drown in rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _loss(model: Any, x: Any, y: np.ndarray, training: bool, seed: int) -> float:
    if training:
        model.reseed(seed)  # same dropout masks for every evaluation
    return float(model.forward_backward(x, y, training=training)[0])


def numerical_gradients(model: Any, x: Any, y: Any, eps: float = 1e-6, training: bool = False,
                        seed: int = 0) -> list[np.ndarray]:
    """Central-difference ∂J/∂θ for every parameter array (float64 recommended)."""
    x = model.check_x(x)
    y = model.check_y(y, x.shape[0])
    out = []
    for p in model.params:
        g = np.zeros(p.shape, np.float64)
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            jp = _loss(model, x, y, training, seed)
            flat[i] = orig - eps
            jm = _loss(model, x, y, training, seed)
            flat[i] = orig
            gflat[i] = (jp - jm) / (2 * eps)
        out.append(g)
    return out


def backprop_gradients(model: Any, x: Any, y: Any, training: bool = False, seed: int = 0
                       ) -> list[np.ndarray]:
    x = model.check_x(x)
    y = model.check_y(y, x.shape[0])
    _loss(model, x, y, training, seed)
    return [g.astype(np.float64).copy() for g in model.grads]


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


def gradcheck(model: Any, x: Any, y: Any, eps: float = 1e-6, training: bool = False,
              seed: int = 0) -> float:
    """Max relative error between backprop and numerical gradients over all parameters.

    The model must be compiled (the loss defines J). ``training=True`` checks with dropout
    active, reusing the same masks for every evaluation.
    """
    model.require_compiled()
    bp = backprop_gradients(model, x, y, training, seed)
    num = numerical_gradients(model, x, y, eps, training, seed)
    return max((relative_error(a, b) for a, b in zip(bp, num)), default=0.0)
