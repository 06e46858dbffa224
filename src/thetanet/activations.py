r"""Activation functions g(z): the lecture's table, one small class per row.

Each class gives the function ``f(z)``, its derivative ``df(z)`` (elementwise, dtype-preserving)
and the table's columns as attributes: ``equation``, ``derivative``, ``monotonic``,
``identity_near_origin`` (f(0) = 0 and f'(0) = 1) and ``range`` (a pair of floats, ±inf
allowed; ``range_brackets`` says which ends are attained, for display only).
``backward(z, a, grad)`` returns δ = grad ⊙ g'(z); it may reuse ``grad``'s memory and may use
the cached output ``a`` = g(z) when that is cheaper.

The lecture's twelve rows (:data:`LECTURE_TABLE`, in the table's order): identity, binary step,
logistic, tanh, arctan, ReLU, softplus, bent identity, SoftExponential (parameter α), sinusoid,
sinc, gaussian. Besides them: softmax (row-wise, for output layers) and the learnable
activations PReLU and APL (SoftExponential is learnable with ``learnable=True``).

Adding an activation is one class decorated with :func:`register`. Learnable activations keep
their parameters in ``params`` and the matching gradients in ``grads`` (name → array) and size
them in :meth:`ActivationFunction.build`; ``backward`` fills ``grads`` with sums over the batch
(the loss already divides by the batch size m). Their table properties (``monotonic``,
``range``, …) are properties computed from the current parameter values.

Numerical care (each class's docstring has the details): logistic and softplus never
exponentiate a positive number; sinc uses its Taylor series near 0; SoftExponential uses
expm1/log1p and series for its α-derivative near α = 0, saturates at ±finfo.max where e^(αx)
overflows, and continues with its tangent line beyond its domain limit for α < 0.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

_REGISTRY: dict[str, type[ActivationFunction]] = {}

#: The lecture table's twelve rows, in its order.
LECTURE_TABLE: tuple[str, ...] = (
    "identity", "binary_step", "logistic", "tanh", "arctan", "relu", "softplus",
    "bent_identity", "soft_exponential", "sinusoid", "sinc", "gaussian",
)

#: min over x of sin(x)/x, attained at the first positive root of tan x = x (x ≈ 4.493409).
SINC_MIN = -0.21723362821122166


def register(cls: type[ActivationFunction]) -> type[ActivationFunction]:
    """Class decorator: make ``cls`` available by its ``name`` and ``aliases``."""
    for key in (cls.name, *cls.aliases):
        if key in _REGISTRY and _REGISTRY[key] is not cls:
            raise ValueError(f"activation name {key!r} is already registered")
        _REGISTRY[key] = cls
    return cls


def names() -> list[str]:
    """The canonical names of all registered activations (aliases excluded), in table order."""
    seen: list[str] = []
    for cls in _REGISTRY.values():
        if cls.name not in seen:
            seen.append(cls.name)
    return seen


def get(identifier: str | dict[str, Any] | ActivationFunction | None, **params: Any
        ) -> ActivationFunction:
    """Return a fresh activation object from a name, a config dict or an instance.

    ``None`` means the identity. Unknown names raise ``ValueError`` listing the known ones.
    ``params`` are the class's constructor arguments, e.g. ``get("soft_exponential", alpha=0.5)``.
    """
    if identifier is None:
        identifier = "identity"
    if isinstance(identifier, ActivationFunction):
        if params:
            raise TypeError("params cannot be combined with an activation instance")
        return identifier
    if isinstance(identifier, dict):
        cfg = dict(identifier)
        name = cfg.pop("name", None)
        if not isinstance(name, str):
            raise ValueError(f"activation config needs a 'name': {identifier!r}")
        return get(name, **{**cfg, **params})
    if not isinstance(identifier, str):
        raise TypeError(f"activation must be a name, config dict or instance, got {identifier!r}")
    key = identifier.lower()
    if key not in _REGISTRY:
        raise ValueError(
            f"unknown activation {identifier!r}; known: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[key](**params)


# -- helpers -------------------------------------------------------------------------------------
def _as_float(z: Any) -> np.ndarray:
    """``z`` as a float array: float32/float64 kept, anything else becomes float64."""
    z = np.asarray(z)
    return z if z.dtype.kind == "f" else z.astype(np.float64)


def _emit(res: Any, z: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """Return ``res`` in ``z``'s dtype, written into ``out`` when given (``out`` may be ``z``)."""
    res = np.asarray(res).astype(z.dtype, copy=False)
    if out is None:
        return res
    out[...] = res
    return out


def _saturate(x: np.ndarray) -> np.ndarray:
    """Clip ±inf (from an overflow of a finite value) to ±finfo.max, in place; NaN stays NaN."""
    big = np.finfo(x.dtype).max
    return np.clip(x, -big, big, out=x)


def _horner(x: np.ndarray, coefs: tuple[float, ...]) -> np.ndarray:
    """Σ_k coefs[k] x^k."""
    acc = np.full_like(x, coefs[-1])
    for c in coefs[-2::-1]:
        acc *= x
        acc += c
    return acc


def _sum_to(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum a broadcast gradient ``g`` back to a parameter of ``shape`` (batch and units)."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, n in enumerate(shape):
        if n == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g


class ActivationFunction:
    """Base class. Subclasses set the class attributes and implement ``f`` and ``df``."""

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    equation: ClassVar[str] = ""
    derivative: ClassVar[str] = ""
    monotonic: ClassVar[bool] = True
    identity_near_origin: ClassVar[bool] = False
    range: tuple[float, float] = (-math.inf, math.inf)
    #: "()" open, "[]" closed, "[)" …: which ends of ``range`` are attained (display only).
    range_brackets: ClassVar[str] = "()"
    #: A caveat printed under the table (parameter-dependent columns and the like).
    note: ClassVar[str] = ""
    #: False for functions of a whole row (softmax): no elementwise ``df``.
    elementwise: ClassVar[bool] = True
    #: True for activations with trainable parameters (after ``build``).
    learnable: bool = False

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def build(self, units: int, dtype: np.dtype, rng: np.random.Generator) -> None:
        """Allocate learnable parameters for a layer of ``units`` outputs (none by default)."""

    def f(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def df(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, z: np.ndarray, a: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """δ = grad ⊙ g'(z). May overwrite ``grad``; learnable subclasses also fill ``grads``."""
        grad *= self.df(z)
        return grad

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    def __repr__(self) -> str:
        extra = {k: v for k, v in self.get_config().items() if k != "name"}
        args = ", ".join(f"{k}={v!r}" for k, v in extra.items())
        return f"{type(self).__name__}({args})"


# -- the lecture's table -------------------------------------------------------------------------
@register
class Identity(ActivationFunction):
    """f(z) = z, f'(z) = 1. The output unit of a regression network."""

    name = "identity"
    aliases = ("linear",)
    equation = "f(x) = x"
    derivative = "f'(x) = 1"
    identity_near_origin = True

    def f(self, z, out=None):
        z = _as_float(z)
        if out is None:
            return z.copy()
        out[...] = z
        return out

    def df(self, z):
        return np.ones_like(_as_float(z))

    def backward(self, z, a, grad):
        return grad


@register
class BinaryStep(ActivationFunction):
    """Binary (Heaviside) step f(z) = 0 for z < 0, 1 for z ≥ 0; f'(z) = 0 (for z ≠ 0).

    The derivative is 0 wherever it exists (and undefined at 0, where we also return 0), so
    every δ below a layer of binary steps is 0: a network of binary steps cannot learn by
    backpropagation (only a layer above the last step layer receives gradients). This is the
    perceptron's unit; the logistic function is its differentiable "soft step".
    """

    name = "binary_step"
    equation = "f(x) = 0 for x < 0, 1 for x >= 0"
    derivative = "f'(x) = 0 for x != 0, undefined at 0 (0 used)"
    range = (0.0, 1.0)
    range_brackets = "{}"
    note = "binary_step: f' = 0 everywhere, so backprop cannot train layers below it."

    def f(self, z, out=None):
        z = _as_float(z)
        return _emit(z >= 0, z, out)

    def df(self, z):
        return np.zeros_like(_as_float(z))

    def backward(self, z, a, grad):
        grad[...] = 0
        return grad


@register
class Logistic(ActivationFunction):
    """Logistic (soft step) σ(z) = 1 / (1 + e^(−z)); σ'(z) = σ(z)(1 − σ(z)).

    Computed from e^(−|z|) so that no exponential overflows for large |z|.
    """

    name = "logistic"
    aliases = ("sigmoid",)
    equation = "f(x) = 1 / (1 + e^-x)"
    derivative = "f'(x) = f(x) (1 - f(x))"
    range = (0.0, 1.0)

    def f(self, z, out=None):
        z = _as_float(z)
        e = np.exp(-np.abs(z))
        pos = 1.0 / (1.0 + e)
        res = np.where(z >= 0, pos, e * pos).astype(z.dtype, copy=False)
        if out is None:
            return res
        out[...] = res
        return out

    def df(self, z):
        s = self.f(z)
        return s * (1 - s)

    def backward(self, z, a, grad):
        grad *= a
        grad *= 1 - a
        return grad


@register
class Tanh(ActivationFunction):
    """tanh(z) = 2 / (1 + e^(−2z)) − 1; tanh'(z) = 1 − tanh²(z)."""

    name = "tanh"
    equation = "f(x) = tanh(x) = 2 / (1 + e^-2x) - 1"
    derivative = "f'(x) = 1 - f(x)^2"
    identity_near_origin = True
    range = (-1.0, 1.0)

    def f(self, z, out=None):
        return np.tanh(_as_float(z), out=out)

    def df(self, z):
        t = np.tanh(_as_float(z))
        return 1 - t * t

    def backward(self, z, a, grad):
        grad *= 1 - a * a
        return grad


@register
class Arctan(ActivationFunction):
    """f(z) = arctan(z); f'(z) = 1 / (1 + z²), range (−π/2, π/2)."""

    name = "arctan"
    equation = "f(x) = arctan(x)"
    derivative = "f'(x) = 1 / (1 + x^2)"
    identity_near_origin = True
    range = (-math.pi / 2, math.pi / 2)

    def f(self, z, out=None):
        return np.arctan(_as_float(z), out=out)

    def df(self, z):
        z = _as_float(z)
        with np.errstate(over="ignore"):
            return 1 / (1 + z * z)  # z² = inf → 0, the right limit


@register
class ReLU(ActivationFunction):
    """Rectified linear unit f(z) = max(0, z); f'(z) = 1 for z > 0, else 0 (0 at the kink)."""

    name = "relu"
    equation = "f(x) = 0 for x < 0, x for x >= 0"
    derivative = "f'(x) = 0 for x < 0, 1 for x > 0 (0 used at 0)"
    range = (0.0, math.inf)
    range_brackets = "[)"

    def f(self, z, out=None):
        if type(z) is not np.ndarray or z.dtype.kind != "f":
            z = _as_float(z)
        if z.ndim == 2 and z.shape[1]:
            # max with a row of zeros (broadcast) runs a SIMD loop, ~2× faster than the scalar 0
            zero = self.__dict__.get("_zero")
            if zero is None or zero.shape[0] != z.shape[1] or zero.dtype != z.dtype:
                zero = self._zero = np.zeros(z.shape[1], z.dtype)
            return np.maximum(z, zero, out=out)
        return np.maximum(z, 0, out=out)

    def df(self, z):
        z = _as_float(z)
        return (z > 0).astype(z.dtype)

    def backward(self, z, a, grad):
        mask = self.__dict__.get("_mask")
        if mask is None or mask.shape != a.shape:
            mask = self._mask = np.empty(a.shape, bool)
        np.greater(a, 0, out=mask)
        np.multiply(grad, mask, out=grad)
        return grad


@register
class Softplus(ActivationFunction):
    """Softplus f(z) = ln(1 + e^z); f'(z) = 1 / (1 + e^(−z)) = σ(z), the logistic function.

    Computed as max(z, 0) + ln(1 + e^(−|z|)) (log1p), which never overflows and keeps full
    precision for large negative z, where f(z) ≈ e^z.
    """

    name = "softplus"
    equation = "f(x) = ln(1 + e^x)"
    derivative = "f'(x) = 1 / (1 + e^-x)"
    range = (0.0, math.inf)

    def f(self, z, out=None):
        z = _as_float(z)
        return _emit(np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z))), z, out)

    def df(self, z):
        return Logistic().f(z)

    def backward(self, z, a, grad):
        grad *= Logistic().f(z)
        return grad


@register
class BentIdentity(ActivationFunction):
    """Bent identity f(z) = (√(z² + 1) − 1)/2 + z; f'(z) = z / (2√(z² + 1)) + 1.

    √(z² + 1) − 1 is computed as z · z / (√(z² + 1) + 1) with √(z² + 1) = hypot(z, 1): no
    cancellation near 0 and no overflow of z² for huge |z|.
    """

    name = "bent_identity"
    equation = "f(x) = (sqrt(x^2 + 1) - 1) / 2 + x"
    derivative = "f'(x) = x / (2 sqrt(x^2 + 1)) + 1"
    identity_near_origin = True

    def f(self, z, out=None):
        z = _as_float(z)
        h = np.hypot(z, 1)
        return _emit(0.5 * (z * (z / (h + 1))) + z, z, out)

    def df(self, z):
        z = _as_float(z)
        return z / (2 * np.hypot(z, 1)) + 1


# -- SoftExponential -----------------------------------------------------------------------------
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
            f[m] = _saturate(np.expm1(t) / al + al)
            dx[m] = _saturate(e)
            if da is not None:
                small = np.abs(t) < 0.2
                g = np.where(small, x * x * _horner(np.where(small, t, 0), _G_SERIES),
                             (e * (t - 1) + 1) / (al * al))
                da[m] = _saturate(g + 1)
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
                q = np.where(small, xa * xa * _horner(np.where(small, s_in, 0), _Q_SERIES),
                             (np.log1p(s_in) - s_in / u) / (al * al))
                out_da = lnu_min / (al * al) + ((1 - u_min) / (al * al) + 1) / u_min
                da[m] = _saturate(np.where(inside, q + 1 / u, out_da))
    return f, dx, da


class _Learnable(ActivationFunction):
    """Shared plumbing: parameters of shape (1,) per layer or (units,) per unit."""

    learnable = True

    def __init__(self, per_unit: bool = False) -> None:
        super().__init__()
        self.per_unit = bool(per_unit)

    def _new_param(self, name: str, value: Any, units: int, dtype: np.dtype,
                   leading: tuple[int, ...] = ()) -> None:
        shape = (*leading, units if self.per_unit else 1)
        arr = np.empty(shape, dtype)
        arr[...] = np.asarray(value, dtype).reshape(*leading, 1) if leading else value
        self.params[name] = np.ascontiguousarray(arr)
        self.grads[name] = np.zeros_like(self.params[name])


@register
class SoftExponential(_Learnable):
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
        z = _as_float(z)
        return _emit(_softexp(z, self._alpha(), self.u_min, False)[0], z, out)

    def df(self, z):
        z = _as_float(z)
        return _softexp(z, self._alpha(), self.u_min, False)[1]

    def df_dalpha(self, z: np.ndarray) -> np.ndarray:
        """∂f/∂α elementwise (α broadcast against ``z``)."""
        z = _as_float(z)
        return _softexp(z, self._alpha(), self.u_min, True)[2]  # type: ignore[return-value]

    def backward(self, z, a, grad):
        if not self.params:
            grad *= self.df(z)
            return grad
        _, dx, da = _softexp(z, self.params["alpha"], self.u_min, True)
        with np.errstate(over="ignore"):  # saturated f' (see the class docstring) stays finite
            self.grads["alpha"][...] = _saturate(_sum_to(_saturate(grad * da),
                                                         self.params["alpha"].shape))
            grad *= dx
        return _saturate(grad)

    def get_config(self):
        return {"name": self.name, "alpha": self.alpha, "learnable": self.learnable,
                "per_unit": self.per_unit, "u_min": self.u_min}


@register
class Sinusoid(ActivationFunction):
    """Sinusoid f(z) = sin(z); f'(z) = cos(z)."""

    name = "sinusoid"
    equation = "f(x) = sin(x)"
    derivative = "f'(x) = cos(x)"
    monotonic = False
    identity_near_origin = True
    range = (-1.0, 1.0)
    range_brackets = "[]"

    def f(self, z, out=None):
        return np.sin(_as_float(z), out=out)

    def df(self, z):
        return np.cos(_as_float(z))


# sin(x)/x = Σ_n (−1)^n x^(2n)/(2n + 1)!, and its derivative Σ_n (−1)^n 2n x^(2n−1)/(2n + 1)!
_SINC_SERIES = tuple((-1) ** n / math.factorial(2 * n + 1) for n in range(7))
_DSINC_SERIES = tuple((-1) ** n * 2 * n / math.factorial(2 * n + 1) for n in range(1, 8))


@register
class Sinc(ActivationFunction):
    """Sinc f(z) = sin(z)/z (1 at z = 0); f'(z) = cos(z)/z − sin(z)/z² (0 at z = 0).

    For |z| < 0.5 both come from their Taylor series (7 terms, error < 1e-13), which avoids
    the 0/0 at the origin and the cancellation in cos(z)/z − sin(z)/z² near it.
    Range [≈ −0.217234, 1]: the minimum is at the first positive root of tan z = z.
    """

    name = "sinc"
    equation = "f(x) = 1 for x = 0, sin(x)/x otherwise"
    derivative = "f'(x) = 0 for x = 0, cos(x)/x - sin(x)/x^2 otherwise"
    monotonic = False
    range = (SINC_MIN, 1.0)
    range_brackets = "[]"

    def f(self, z, out=None):
        z = _as_float(z)
        small = np.abs(z) < 0.5
        safe = np.where(small, 1, z)
        res = np.where(small, _horner(np.where(small, z * z, 0), _SINC_SERIES),
                       np.sin(safe) / safe)
        return _emit(res, z, out)

    def df(self, z):
        z = _as_float(z)
        small = np.abs(z) < 0.5
        safe = np.where(small, 1, z)
        series = z * _horner(np.where(small, z * z, 0), _DSINC_SERIES)
        res = np.where(small, series, np.cos(safe) / safe - np.sin(safe) / (safe * safe))
        return res.astype(z.dtype, copy=False)


@register
class Gaussian(ActivationFunction):
    """Gaussian f(z) = e^(−z²); f'(z) = −2z e^(−z²)."""

    name = "gaussian"
    equation = "f(x) = e^(-x^2)"
    derivative = "f'(x) = -2x e^(-x^2)"
    monotonic = False
    range = (0.0, 1.0)
    range_brackets = "(]"

    def f(self, z, out=None):
        z = _as_float(z)
        with np.errstate(over="ignore"):
            return _emit(np.exp(-(z * z)), z, out)

    def df(self, z):
        z = _as_float(z)
        with np.errstate(over="ignore"):
            return -2 * z * np.exp(-(z * z))


# -- beyond the table ----------------------------------------------------------------------------
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

    def f(self, z, out=None):
        z = _as_float(z)
        if out is None:
            out = np.empty_like(z)
        np.subtract(z, z.max(axis=-1, keepdims=True), out=out)
        np.exp(out, out=out)
        out /= out.sum(axis=-1, keepdims=True)
        return out

    def df(self, z):
        raise TypeError("softmax is not elementwise; use backward() for its Jacobian product")

    def backward(self, z, a, grad):
        s = (grad * a).sum(axis=-1, keepdims=True)
        grad -= s
        grad *= a
        return grad


@register
class PReLU(_Learnable):
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
        z = _as_float(z)
        al = np.asarray(self._alpha(), z.dtype)
        return _emit(np.where(z > 0, z, al * z), z, out)

    def df(self, z):
        z = _as_float(z)
        al = np.asarray(self._alpha(), z.dtype)
        return np.where(z > 0, np.ones((), z.dtype), al).astype(z.dtype, copy=False)

    def backward(self, z, a, grad):
        neg = z <= 0
        if self.params:
            self.grads["alpha"][...] = _sum_to(np.where(neg, grad * z, 0),
                                               self.params["alpha"].shape)
        grad *= np.where(neg, np.asarray(self._alpha(), grad.dtype), np.ones((), grad.dtype))
        return grad

    def get_config(self):
        return {"name": self.name, "alpha": self.alpha, "per_unit": self.per_unit}


@register
class APL(_Learnable):
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
        z = _as_float(z)
        a, b = self._ab(z.dtype)
        res = np.maximum(z, 0)
        for s in range(self.hinges):
            res = res + a[s] * np.maximum(b[s] - z, 0)
        return _emit(res, z, out)

    def df(self, z):
        z = _as_float(z)
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
                self.grads["a"][s] = _sum_to(grad * np.maximum(b[s] - z, 0), a[s].shape)
                self.grads["b"][s] = _sum_to(np.where(below, grad * a[s], 0), b[s].shape)
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
