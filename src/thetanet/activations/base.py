r"""The activation contract g(z) and the numerical helpers the rows share.

Each activation gives the function ``f(z)``, its derivative ``df(z)`` (elementwise,
dtype-preserving) and the lecture table's columns as attributes: ``equation``, ``derivative``,
``monotonic``, ``identity_near_origin`` (f(0) = 0 and f'(0) = 1) and ``range`` (a pair of
floats, ±inf allowed; ``range_brackets`` says which ends are attained, for display only).
``backward(z, a, grad)`` returns δ = grad ⊙ g'(z); it may reuse ``grad``'s memory and may use
the cached output ``a`` = g(z) when that is cheaper.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np


def as_float(z: Any) -> np.ndarray:
    """``z`` as a float array: float32/float64 kept, anything else becomes float64."""
    arr: np.ndarray = np.asarray(z)
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


def emit(res: Any, z: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """Return ``res`` in ``z``'s dtype, written into ``out`` when given (``out`` may be ``z``)."""
    arr: np.ndarray = np.asarray(res).astype(z.dtype, copy=False)
    if out is None:
        return arr
    out[...] = arr
    return out


def saturate(x: np.ndarray) -> np.ndarray:
    """Clip ±inf (from an overflow of a finite value) to ±finfo.max, in place; NaN stays NaN."""
    big = np.finfo(x.dtype).max
    return np.clip(x, -big, big, out=x)


def horner(x: np.ndarray, coefs: tuple[float, ...]) -> np.ndarray:
    """Σ_k coefs[k] x^k."""
    acc = np.full_like(x, coefs[-1])
    for c in coefs[-2::-1]:
        acc *= x
        acc += c
    return acc


def sum_to(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
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


class Learnable(ActivationFunction):
    """Shared plumbing of learnable activations: parameters of shape (1,) per layer or
    (units,) per unit (after ``leading`` axes), kept in ``params`` with gradients in ``grads``."""

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
