r"""The lecture's table, the rows without parameters: one small class per row.

identity, binary step, logistic, tanh, arctan, ReLU, softplus, bent identity, sinusoid, sinc
and gaussian (SoftExponential, the row with a parameter α, is in :mod:`.soft_exponential`).

Numerical care (each class's docstring has the details): logistic and softplus never
exponentiate a positive number; bent identity avoids cancellation near 0; sinc uses its Taylor
series near 0.
"""

from __future__ import annotations

import math

import numpy as np

from thetanet.activations.base import ActivationFunction, as_float, emit, horner
from thetanet.activations.registry import register

#: min over x of sin(x)/x, attained at the first positive root of tan x = x (x ≈ 4.493409).
SINC_MIN = -0.21723362821122166


@register
class Identity(ActivationFunction):
    """f(z) = z, f'(z) = 1. The output unit of a regression network."""

    name = "identity"
    aliases = ("linear",)
    equation = "f(x) = x"
    derivative = "f'(x) = 1"
    identity_near_origin = True

    def f(self, z, out=None):
        z = as_float(z)
        if out is None:
            return z.copy()
        out[...] = z
        return out

    def df(self, z):
        return np.ones_like(as_float(z))

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
        z = as_float(z)
        return emit(z >= 0, z, out)

    def df(self, z):
        return np.zeros_like(as_float(z))

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
        z = as_float(z)
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
        return np.tanh(as_float(z), out=out)

    def df(self, z):
        t = np.tanh(as_float(z))
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
        return np.arctan(as_float(z), out=out)

    def df(self, z):
        z = as_float(z)
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
            z = as_float(z)
        if z.ndim == 2 and z.shape[1]:
            # max with a row of zeros (broadcast) runs a SIMD loop, ~2× faster than the scalar 0
            zero = self.__dict__.get("_zero")
            if zero is None or zero.shape[0] != z.shape[1] or zero.dtype != z.dtype:
                zero = self._zero = np.zeros(z.shape[1], z.dtype)
            return np.maximum(z, zero, out=out)
        return np.maximum(z, 0, out=out)

    def df(self, z):
        z = as_float(z)
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
        z = as_float(z)
        return emit(np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z))), z, out)

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
        z = as_float(z)
        h = np.hypot(z, 1)
        return emit(0.5 * (z * (z / (h + 1))) + z, z, out)

    def df(self, z):
        z = as_float(z)
        return z / (2 * np.hypot(z, 1)) + 1


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
        return np.sin(as_float(z), out=out)

    def df(self, z):
        return np.cos(as_float(z))


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
        z = as_float(z)
        small = np.abs(z) < 0.5
        safe = np.where(small, 1, z)
        res = np.where(small, horner(np.where(small, z * z, 0), _SINC_SERIES),
                       np.sin(safe) / safe)
        return emit(res, z, out)

    def df(self, z):
        z = as_float(z)
        small = np.abs(z) < 0.5
        safe = np.where(small, 1, z)
        series = z * horner(np.where(small, z * z, 0), _DSINC_SERIES)
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
        z = as_float(z)
        with np.errstate(over="ignore"):
            return emit(np.exp(-(z * z)), z, out)

    def df(self, z):
        z = as_float(z)
        with np.errstate(over="ignore"):
            return -2 * z * np.exp(-(z * z))
