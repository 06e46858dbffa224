r"""Learnable activations beyond the lecture's table: PReLU (α) and APL (a_s, b_s).

Their parameters live in ``params`` and the matching gradients in ``grads`` (name → array),
sized in ``build``; ``backward`` fills ``grads`` with sums over the batch (the loss already
divides by the batch size m). Their table columns (``monotonic``, ``range``, …) are properties
computed from the current parameter values. The learnable SoftExponential is in
:mod:`.soft_exponential`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from thetanet.activations.base import Learnable, as_float, emit, sum_to
from thetanet.activations.registry import register


@register
class PReLU(Learnable):
    """Parametric ReLU (He et al. 2015): f(z) = z for z > 0, αz for z ≤ 0, α learned.

    ∂f/∂z = 1 for z > 0, α for z ≤ 0; ∂f/∂α = z for z ≤ 0, 0 for z > 0.

    Args:
        alpha: initial slope for negative inputs (0.25 as in the paper).
        per_unit: one α per unit instead of one per layer (the default, as ``torch.nn.PReLU``).

    Table columns follow the current α: monotonic iff α ≥ 0, ≈ x near 0 iff α = 1, range
    (−∞, ∞) if some α > 0, else [0, ∞).
    """

    name = "prelu"
    equation = "f(x) = a x for x < 0, x for x >= 0 (a learned)"
    derivative = "f'(x) = a for x < 0, 1 for x >= 0"

    def __init__(self, alpha: float = 0.25, per_unit: bool = False) -> None:
        super().__init__(per_unit)
        if not math.isfinite(alpha):
            raise ValueError(f"prelu alpha must be finite, got {alpha!r}")
        self.alpha = float(alpha)

    def build(self, units, dtype, rng):
        self._new_param("alpha", self.alpha, units, dtype)

    def _alpha(self) -> Any:
        return self.params["alpha"] if "alpha" in self.params else self.alpha

    def _alphas(self) -> np.ndarray:
        return np.atleast_1d(np.asarray(self._alpha(), np.float64))

    @property
    def monotonic(self) -> bool:  # type: ignore[override]
        return bool(np.all(self._alphas() >= 0))

    @property
    def identity_near_origin(self) -> bool:  # type: ignore[override]
        return bool(np.all(self._alphas() == 1))

    @property
    def range(self) -> tuple[float, float]:  # type: ignore[override]
        return (-math.inf if np.any(self._alphas() > 0) else 0.0, math.inf)

    def f(self, z, out=None):
        z = as_float(z)
        al = np.asarray(self._alpha(), z.dtype)
        return emit(np.where(z > 0, z, al * z), z, out)

    def df(self, z):
        z = as_float(z)
        al = np.asarray(self._alpha(), z.dtype)
        return np.where(z > 0, np.ones((), z.dtype), al).astype(z.dtype, copy=False)

    def backward(self, z, a, grad):
        neg = z <= 0
        if self.params:
            self.grads["alpha"][...] = sum_to(np.where(neg, grad * z, 0),
                                               self.params["alpha"].shape)
        grad *= np.where(neg, np.asarray(self._alpha(), grad.dtype), np.ones((), grad.dtype))
        return grad

    def get_config(self):
        return {"name": self.name, "alpha": self.alpha, "per_unit": self.per_unit}


@register
class APL(Learnable):
    r"""Adaptive piecewise-linear unit (Agostinelli et al. 2014), S learned hinges:

    f(z) = max(0, z) + Σ_{s=1..S} a_s max(0, −z + b_s)
    ∂f/∂z = 1[z > 0] − Σ_s a_s 1[z < b_s];  ∂f/∂a_s = max(0, −z + b_s);
    ∂f/∂b_s = a_s 1[z < b_s].

    ``params``: ``a`` and ``b``, shape (S, units) per unit (the paper's choice, the default)
    or (S, 1) per layer. Unless given, a starts at 0 (the unit starts as a ReLU) and b is drawn
    from N(0, 1) with the model's seeded generator.

    Args:
        hinges: S, the number of hinges.
        per_unit: separate a, b for each unit (default) or shared by the layer.
        a, b: optional initial values, S numbers each.

    Table columns follow the current parameters: monotonic iff f' ≥ 0 on every linear piece;
    range (min over the breakpoints, ∞) when Σ a_s ≥ 0, else (−∞, ∞); never ≈ x at 0 in
    general (a kink at 0).
    """

    name = "apl"
    equation = "f(x) = max(0, x) + sum_s a_s max(0, -x + b_s) (a, b learned)"
    derivative = "f'(x) = 1[x > 0] - sum_s a_s 1[x < b_s]"

    def __init__(self, hinges: int = 2, per_unit: bool = True,
                 a: list[float] | None = None, b: list[float] | None = None) -> None:
        super().__init__(per_unit)
        if isinstance(hinges, bool) or not isinstance(hinges, (int, np.integer)) or hinges < 1:
            raise ValueError(f"apl hinges must be a positive integer, got {hinges!r}")
        self.hinges = int(hinges)
        for nm, v in (("a", a), ("b", b)):
            if v is not None and (len(v) != self.hinges or not np.all(np.isfinite(v))):
                raise ValueError(f"apl {nm} must hold {self.hinges} finite numbers, got {v!r}")
        self.a = None if a is None else [float(v) for v in a]
        self.b = None if b is None else [float(v) for v in b]

    def build(self, units, dtype, rng):
        s = self.hinges
        a0 = np.zeros(s) if self.a is None else np.asarray(self.a)
        self._new_param("a", a0, units, dtype, leading=(s,))
        n = units if self.per_unit else 1
        b0 = rng.normal(0.0, 1.0, (s, n)) if self.b is None else np.asarray(self.b)[:, None]
        self.params["b"] = np.array(np.broadcast_to(b0, (s, n)), dtype)  # a writable copy
        self.grads["b"] = np.zeros_like(self.params["b"])

    def _ab(self, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) of shape (S, n) in ``dtype`` (n = 1 before build)."""
        if self.params:
            return self.params["a"].astype(dtype, copy=False), self.params["b"].astype(
                dtype, copy=False)
        a = np.zeros((self.hinges, 1)) if self.a is None else np.asarray(self.a)[:, None]
        b = (np.linspace(-1, 1, self.hinges)[:, None] if self.b is None
             else np.asarray(self.b)[:, None])
        return a.astype(dtype), b.astype(dtype)

    def f(self, z, out=None):
        z = as_float(z)
        a, b = self._ab(z.dtype)
        res = np.maximum(z, 0)
        for s in range(self.hinges):
            res = res + a[s] * np.maximum(b[s] - z, 0)
        return emit(res, z, out)

    def df(self, z):
        z = as_float(z)
        a, b = self._ab(z.dtype)
        res = (z > 0).astype(z.dtype)
        for s in range(self.hinges):
            res = res - a[s] * (z < b[s])
        return res

    def backward(self, z, a_out, grad):
        a, b = self._ab(grad.dtype)
        dz = (z > 0).astype(grad.dtype)
        for s in range(self.hinges):
            below = z < b[s]
            if self.params:
                self.grads["a"][s] = sum_to(grad * np.maximum(b[s] - z, 0), a[s].shape)
                self.grads["b"][s] = sum_to(np.where(below, grad * a[s], 0), b[s].shape)
            dz -= a[s] * below
        grad *= dz
        return grad

    # -- table columns from the current parameters -----------------------------------------
    def _units(self) -> list[tuple[np.ndarray, np.ndarray]]:
        a, b = self._ab(np.dtype(np.float64))
        return [(a[:, j], b[:, j]) for j in range(a.shape[1])]

    @property
    def monotonic(self) -> bool:  # type: ignore[override]
        for a, b in self._units():
            knots = np.unique(np.concatenate([[0.0], b]))
            probes = np.concatenate([[knots[0] - 1], (knots[:-1] + knots[1:]) / 2,
                                     [knots[-1] + 1]])
            slopes = (probes > 0) - (a[:, None] * (probes[None, :] < b[:, None])).sum(0)
            if np.any(slopes < 0):
                return False
        return True

    @property
    def identity_near_origin(self) -> bool:  # type: ignore[override]
        return False

    @property
    def range(self) -> tuple[float, float]:  # type: ignore[override]
        lo = math.inf
        for a, b in self._units():
            if a.sum() < 0:
                return (-math.inf, math.inf)
            knots = np.concatenate([[0.0], b])
            vals = np.maximum(knots, 0) + (a[:, None] * np.maximum(b[:, None] - knots, 0)).sum(0)
            lo = min(lo, float(vals.min()))
        return (lo, math.inf)

    def get_config(self):
        return {"name": self.name, "hinges": self.hinges, "per_unit": self.per_unit,
                "a": self.a, "b": self.b}
