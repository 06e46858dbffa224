r"""The lecture's algorithm for dense networks, in plain NumPy: read this first.

No buffers, no speed paths, one function per step of the slides. The fast engine
(:mod:`thetanet.backprop`, :mod:`thetanet.layers.dense`) is tested equal to it in float64 to
1e-12 (``tests/test_reference.py``); read it second.

Notation (one example per row, m examples):

==========================  ===============================================================
lecture                     here
==========================  ===============================================================
a^(1) = x                   ``x`` (m × s_1)
a_0 = 1, the bias unit      :func:`with_bias` puts a column of ones in front of a
Θ^(l)                       ``thetas[l]`` (s_{l+1} × (s_l + 1)), bias weights in column 0
z^(l+1) = Θ^(l) a^(l)       ``with_bias(a) @ theta.T`` (rows are examples, hence the ᵀ)
a^(l+1) = g(z^(l+1))        ``g.f(z)``, g from the lecture's table (:mod:`thetanet.activations`)
dropout                     a^(l+1) ⊙ mask, mask = 1/keep where kept, 0 where dropped
δ^(L) = a^(L) − y           fused outputs: softmax + cross-entropy, logistic + binary CE
δ^(l) = Θᵀ δ^(l+1) ⊙ g′(z)  :func:`backprop`, the bias column of Θ left out
∂J/∂Θ^(l) = δ^(l+1) a^(l)ᵀ  the sum over examples; δ already carries 1/m (J is a mean)
+ λ Θ (bias column 0)       L2: J += (λ/2) Σ Θ², the bias weights not regularised
==========================  ===============================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from thetanet import activations

LOSSES = ("categorical_crossentropy", "binary_crossentropy", "mse")


def with_bias(a: np.ndarray) -> np.ndarray:
    """[1 | a]: the bias unit a_0 = 1 in front of every example."""
    return np.hstack([np.ones((a.shape[0], 1), a.dtype), a])


def forward(thetas: Sequence[np.ndarray], gs: Sequence[Any], x: np.ndarray,
            masks: Sequence[np.ndarray | None] | None = None
            ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Forward propagation. Returns (zs, activations): ``zs[l]`` = z^(l+2) and
    ``activations[l]`` = a^(l+1), so ``activations[0]`` is x and ``activations[-1]`` is
    h_Θ(x). ``masks[l]`` (optional) is the dropout mask applied to the output of layer l."""
    zs, acts = [], [x]
    for layer, (theta, g) in enumerate(zip(thetas, gs)):
        z = with_bias(acts[-1]) @ theta.T
        a = activations.get(g).f(z)
        if masks is not None and masks[layer] is not None:
            a = a * masks[layer]
        zs.append(z)
        acts.append(a)
    return zs, acts


def one_hot_targets(y: np.ndarray, k: int) -> np.ndarray:
    """y as rows e_y when given as integer labels."""
    return np.eye(k)[y] if y.ndim == 1 else y


def cost(loss: str, a: np.ndarray, y: np.ndarray, thetas: Sequence[np.ndarray],
         l2: Sequence[float]) -> float:
    """J(Θ): the mean loss over the m examples plus (λ/2) Σ Θ² per layer (bias column out)."""
    y = one_hot_targets(y, a.shape[1]) if loss == "categorical_crossentropy" else y
    if loss == "categorical_crossentropy":
        j = -np.mean(np.sum(y * np.log(a), axis=1))
    elif loss == "binary_crossentropy":
        j = -np.mean(y * np.log(a) + (1 - y) * np.log(1 - a))
    elif loss == "mse":
        j = np.mean((a - y) ** 2)
    else:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    return float(j) + sum(0.5 * lam * float(np.sum(t[:, 1:] ** 2))
                          for t, lam in zip(thetas, l2))


def output_delta(loss: str, g: Any, a: np.ndarray, z: np.ndarray, y: np.ndarray
                 ) -> np.ndarray:
    """δ^(L) = ∂J/∂z^(L). Fused: a^(L) − y over the number of terms averaged in J (m for
    softmax + cross-entropy, m·K for logistic + binary cross-entropy); else
    ∂J/∂a^(L) ⊙ g′(z^(L)) (MSE: ∂J/∂a = 2(a − y)/(m·K))."""
    name = activations.get(g).name
    m, k = a.shape
    if loss == "categorical_crossentropy" and name == "softmax":
        return (a - one_hot_targets(y, k)) / m
    if loss == "binary_crossentropy" and name == "logistic":
        return (a - y) / (m * k)
    if loss == "mse" and activations.get(g).elementwise:
        return 2 * (a - y) / (m * k) * activations.get(g).df(z)
    raise ValueError(f"no reference δ^(L) for loss {loss!r} after a {name} output")


def backprop(thetas: Sequence[np.ndarray], gs: Sequence[Any], x: np.ndarray, y: np.ndarray,
             loss: str, l2: Sequence[float] | None = None,
             masks: Sequence[np.ndarray | None] | None = None
             ) -> tuple[float, list[np.ndarray]]:
    """J and ∂J/∂Θ^(l) for every layer (each of Θ's shape), given the dropout masks."""
    n = len(thetas)
    l2 = list(l2) if l2 is not None else [0.0] * n
    masks = list(masks) if masks is not None else [None] * n
    zs, acts = forward(thetas, gs, x, masks)
    delta = output_delta(loss, gs[-1], acts[-1], zs[-1], y)  # δ^(L)
    grads: list[np.ndarray] = [np.empty(0)] * n
    for layer in range(n - 1, -1, -1):
        # ∂J/∂Θ^(l) = δ^(l+1) (a^(l))ᵀ summed over the examples, + λΘ off the bias column
        grads[layer] = delta.T @ with_bias(acts[layer])
        grads[layer][:, 1:] += l2[layer] * thetas[layer][:, 1:]
        if layer > 0:
            # δ^(l) = (Θ^(l))ᵀ δ^(l+1) ⊙ g′(z^(l)), through layer l−1's dropout mask
            below = delta @ thetas[layer][:, 1:]
            if masks[layer - 1] is not None:
                below = below * masks[layer - 1]
            delta = below * activations.get(gs[layer - 1]).df(zs[layer - 1])
    return cost(loss, acts[-1], y, thetas, l2), grads
