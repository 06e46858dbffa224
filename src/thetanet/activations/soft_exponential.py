r"""SoftExponential (the lecture table's row with a parameter α), fixed or learnable.

Numerics: expm1/log1p for the branches and series for ∂f/∂α near α = 0, saturation at
±finfo.max where e^(αx) overflows, and a tangent-line continuation beyond the domain limit for
α < 0 (see :class:`SoftExponential`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from thetanet.activations.base import Learnable, as_float, emit, horner, saturate, sum_to
from thetanet.activations.registry import register

# q(s)/s² for q(s) = ln(1 + s) − s/(1 + s): Σ_n (−1)^n (n + 1)/(n + 2) s^n, used for |s| < 0.05.
_Q_SERIES = tuple((-1) ** n * (n + 1) / (n + 2) for n in range(13))
# g(t)/t² for g(t) = e^t (t − 1) + 1: Σ_k (k + 1)/(k + 2)! t^k, used for |t| < 0.2.
_G_SERIES = tuple((k + 1) / math.factorial(k + 2) for k in range(11))


def _softexp(z: np.ndarray, alpha: Any, u_min: float, want_da: bool
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """f, ∂f/∂x and (optionally) ∂f/∂α of SoftExponential, elementwise, in ``z``'s dtype."""
    dt = z.dtype
    a = np.broadcast_to(np.asarray(alpha, dt), z.shape)
    f = np.empty_like(z)
    dx = np.empty_like(z)
    da = np.empty_like(z) if want_da else None
    with np.errstate(over="ignore"):
        # α = 0: the identity
        m = a == 0
        if m.any():
            x = z[m]
            f[m] = x
            dx[m] = 1
            if da is not None:
                da[m] = 0.5 * x * x + 1
        # α > 0: (e^(αx) − 1)/α + α
        m = a > 0
        if m.any():
            x, al = z[m], a[m]
            t = al * x
            e = np.exp(t)
            f[m] = saturate(np.expm1(t) / al + al)
            dx[m] = saturate(e)
            if da is not None:
                small = np.abs(t) < 0.2
                g = np.where(small, x * x * horner(np.where(small, t, 0), _G_SERIES),
                             (e * (t - 1) + 1) / (al * al))
                da[m] = saturate(g + 1)
        # α < 0: −ln(1 − α(x + α))/α, i.e. −ln(1 + s)/α with s = −α(x + α)
        m = a < 0
        if m.any():
            x, al = z[m], a[m]
            s = -al * (x + al)
            inside = s > u_min - 1  # u = 1 + s > u_min: the exact formula
            s_in = np.where(inside, s, 0)
            u = 1 + s_in
            lnu_min = math.log(u_min)
            x_c = (1 - u_min) / al - al  # where u = u_min: the tangent line starts here
            f[m] = np.where(inside, -np.log1p(s_in) / al, -lnu_min / al + (x - x_c) / u_min)
            dx[m] = np.where(inside, 1 / u, 1 / u_min)
            if da is not None:
                small = np.abs(s_in) < 0.05
                xa = x + al
                q = np.where(small, xa * xa * horner(np.where(small, s_in, 0), _Q_SERIES),
                             (np.log1p(s_in) - s_in / u) / (al * al))
                out_da = lnu_min / (al * al) + ((1 - u_min) / (al * al) + 1) / u_min
                da[m] = saturate(np.where(inside, q + 1 / u, out_da))
    return f, dx, da


@register
class SoftExponential(Learnable):
    r"""SoftExponential (Godfrey & Gashler 2015), a continuum of log, linear and exp:

    f(α, x) = −ln(1 − α(x + α))/α   for α < 0
              x                      for α = 0
              (e^(αx) − 1)/α + α     for α > 0

    ∂f/∂x = 1/(1 − α(α + x)) for α < 0, 1 for α = 0, e^(αx) for α > 0;
    ∂f/∂α = ln(u)/α² + (x + 2α)/(αu) with u = 1 − α(x + α) for α < 0, x²/2 + 1 at α = 0,
    (αx e^(αx) − e^(αx) + 1)/α² + 1 for α > 0 (continuous in α: the limits at 0 agree).

    Args:
        alpha: α (the initial α when learnable).
        learnable: train α by backprop (after ``build``: ``params["alpha"]``).
        per_unit: with ``learnable``, one α per unit instead of one per layer.
        u_min: domain guard for α < 0, see below.

    Numerics: expm1/log1p for the branches; series for ∂f/∂α when |αx| or |s| is small, so
    learning α through 0 is smooth. For α > 0, where e^(αx) exceeds the float type
    (αx ≳ 709 in float64, ≳ 88 in float32) f and its derivatives saturate at finfo.max
    instead of becoming inf.

    Domain (α < 0): the logarithm needs u = 1 − α(x + α) > 0, i.e. x > 1/α − α (x > −1.5 for
    α = −0.5). We evaluate the exact formula where u > ``u_min`` (default 1e-3; f' = 1/u there)
    and continue below with the tangent line at u = u_min: f stays finite, increasing and C¹,
    f' = 1/u_min, and ∂f/∂α is that line's (finite) derivative. So there is never a NaN; the
    values differ from the (undefined or near-singular) exact ones only where u ≤ u_min.

    Table columns: always monotonic; ≈ x near 0 iff α = 0; range (α − 1/α, ∞) for α > 0,
    (−∞, ∞) otherwise (for per-unit α: the union over units).
    """

    name = "soft_exponential"
    equation = "f(a,x) = -ln(1 - a(x+a))/a (a<0); x (a=0); (e^(ax) - 1)/a + a (a>0)"
    derivative = "f'(a,x) = 1/(1 - a(a+x)) (a<0); e^(ax) (a>=0)"
    note = ("soft_exponential: a = alpha; ≈x near 0 iff a = 0; range (a - 1/a, inf) for a > 0; "
            "for a < 0 defined for x > 1/a - a (tangent-line continuation below).")

    def __init__(self, alpha: float = 0.0, learnable: bool = False, per_unit: bool = False,
                 u_min: float = 1e-3) -> None:
        super().__init__(per_unit)
        if not math.isfinite(alpha):
            raise ValueError(f"soft_exponential alpha must be finite, got {alpha!r}")
        if not 0 < u_min < 1:
            raise ValueError(f"soft_exponential u_min must be in (0, 1), got {u_min!r}")
        if per_unit and not learnable:
            raise ValueError("soft_exponential per_unit=True needs learnable=True")
        self.alpha = float(alpha)
        self.learnable = bool(learnable)
        self.u_min = float(u_min)

    def build(self, units, dtype, rng):
        if self.learnable:
            self._new_param("alpha", self.alpha, units, dtype)

    def _alpha(self) -> Any:
        return self.params["alpha"] if "alpha" in self.params else self.alpha

    def _alphas(self) -> np.ndarray:
        return np.atleast_1d(np.asarray(self._alpha(), np.float64))

    @property
    def identity_near_origin(self) -> bool:  # type: ignore[override]
        return bool(np.all(self._alphas() == 0))

    @property
    def range(self) -> tuple[float, float]:  # type: ignore[override]
        al = self._alphas()
        if np.any(al <= 0):
            return (-math.inf, math.inf)
        return (float(np.min(al - 1 / al)), math.inf)

    def f(self, z, out=None):
        z = as_float(z)
        return emit(_softexp(z, self._alpha(), self.u_min, False)[0], z, out)

    def df(self, z):
        z = as_float(z)
        return _softexp(z, self._alpha(), self.u_min, False)[1]

    def df_dalpha(self, z: np.ndarray) -> np.ndarray:
        """∂f/∂α elementwise (α broadcast against ``z``)."""
        z = as_float(z)
        return _softexp(z, self._alpha(), self.u_min, True)[2]  # type: ignore[return-value]

    def backward(self, z, a, grad):
        if not self.params:
            grad *= self.df(z)
            return grad
        _, dx, da = _softexp(z, self.params["alpha"], self.u_min, True)
        with np.errstate(over="ignore"):  # saturated f' (see the class docstring) stays finite
            self.grads["alpha"][...] = saturate(sum_to(saturate(grad * da),
                                                         self.params["alpha"].shape))
            grad *= dx
        return saturate(grad)

    def get_config(self):
        return {"name": self.name, "alpha": self.alpha, "learnable": self.learnable,
                "per_unit": self.per_unit, "u_min": self.u_min}
