r"""Activation functions g(z): the lecture's table, one small class per row.

Each class gives the function ``f(z)``, its derivative ``df(z)`` (elementwise, dtype-preserving)
and the table's columns as attributes: ``monotonic``, ``identity_near_origin`` (f(0) = 0 and
f'(0) = 1) and ``range``. ``backward(z, a, grad)`` returns δ = grad ⊙ g'(z); it may reuse
``grad``'s memory and may use the cached output ``a`` = g(z) when that is cheaper.

Adding an activation is one class decorated with :func:`register`. Learnable activations keep
their parameters in ``params`` and the matching gradients in ``grads`` (name → array) and size
them in :meth:`ActivationFunction.build`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

_REGISTRY: dict[str, type[ActivationFunction]] = {}


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


class ActivationFunction:
    """Base class. Subclasses set the class attributes and implement ``f`` and ``df``."""

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    equation: ClassVar[str] = ""
    derivative: ClassVar[str] = ""
    monotonic: ClassVar[bool] = True
    identity_near_origin: ClassVar[bool] = False
    range: tuple[float, float] = (-math.inf, math.inf)
    #: False for functions of a whole row (softmax): no elementwise ``df``.
    elementwise: ClassVar[bool] = True

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


@register
class Identity(ActivationFunction):
    """f(z) = z, f'(z) = 1. The output unit of a regression network."""

    name = "identity"
    aliases = ("linear",)
    equation = "f(x) = x"
    derivative = "f'(x) = 1"
    identity_near_origin = True

    def f(self, z, out=None):
        if out is None:
            return z.copy()
        out[...] = z
        return out

    def df(self, z):
        return np.ones_like(z)

    def backward(self, z, a, grad):
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
        return np.tanh(z, out=out)

    def df(self, z):
        t = np.tanh(z)
        return 1 - t * t

    def backward(self, z, a, grad):
        grad *= 1 - a * a
        return grad


@register
class ReLU(ActivationFunction):
    """Rectified linear unit f(z) = max(0, z); f'(z) = 1 for z > 0, else 0 (0 at the kink)."""

    name = "relu"
    equation = "f(x) = 0 for x < 0, x for x >= 0"
    derivative = "f'(x) = 0 for x < 0, 1 for x >= 0"
    range = (0.0, math.inf)

    def f(self, z, out=None):
        return np.maximum(z, 0, out=out)

    def df(self, z):
        return (z > 0).astype(z.dtype)

    def backward(self, z, a, grad):
        np.multiply(grad, a > 0, out=grad)
        return grad


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
