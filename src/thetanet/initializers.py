r"""Weight initialisers for Θ^(j): ``init(shape, rng, dtype) -> array``.

``shape`` is the kernel's (fan_in, fan_out) = (s_j, s_{j+1}). Zeros and ones exist to show the
symmetry problem: every hidden unit of a layer computes the same function and receives the same
update, so they stay identical forever. Random schemes break the symmetry:

- ``uniform_epsilon`` (the lecture's): U[−ε, ε] with ε = √6 / √(L_in + L_out)
- ``glorot_uniform``: the same ε (Glorot & Bengio 2010); ``glorot_normal``: N(0, 2/(in+out))
- ``he_uniform``: U[−√(6/in), √(6/in)]; ``he_normal``: N(0, 2/in) (for ReLU)
- ``normal``: N(0, stddev²); ``constant``: every entry = ``value``; ``uniform``: U[minval, maxval]
  (Keras's embedding default, ±0.05)
- ``orthogonal``: a random orthogonal matrix (QR of a Gaussian one, signs fixed by R's
  diagonal), Keras's default for recurrent kernels: ‖h U‖ = ‖h‖, so a state neither explodes
  nor vanishes through U alone
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Initializer = Callable[[tuple[int, ...], np.random.Generator, np.dtype], np.ndarray]

#: Elements drawn at a time: the float64 draws are written into the result (in the model's
#: dtype) chunk by chunk, so a float32 kernel never needs a float64 copy of its own size. The
#: generator's stream is sequential: the values equal one draw of the whole shape.
DRAW_CHUNK = 1 << 20


def _draw(shape: tuple[int, ...], dtype: Any,
          sample: Callable[[int], np.ndarray]) -> np.ndarray:
    """An array of ``shape`` in ``dtype`` filled from ``sample(n)`` (n float64 draws), in
    chunks of :data:`DRAW_CHUNK`."""
    out = np.empty(shape, dtype=dtype)
    flat = out.reshape(-1)
    for start in range(0, flat.size, DRAW_CHUNK):
        stop = min(start + DRAW_CHUNK, flat.size)
        flat[start:stop] = sample(stop - start)
    return out


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) as Keras computes them: a kernel (s_in, s_out), or a convolution
    kernel (k_h, k_w, …, C_in, C_out) whose receptive field k_h·k_w·… multiplies both."""
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def zeros(shape: tuple[int, ...], rng: np.random.Generator, dtype: Any) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


def ones(shape: tuple[int, ...], rng: np.random.Generator, dtype: Any) -> np.ndarray:
    return np.ones(shape, dtype=dtype)


def constant(value: float = 0.0) -> Initializer:
    def init(shape: tuple[int, ...], rng: np.random.Generator, dtype: Any) -> np.ndarray:
        return np.full(shape, value, dtype=dtype)

    init.__name__ = "constant"
    init.config = {"name": "constant", "value": float(value)}  # type: ignore[attr-defined]
    return init


def normal(stddev: float = 0.05, mean: float = 0.0) -> Initializer:
    def init(shape: tuple[int, ...], rng: np.random.Generator, dtype: Any) -> np.ndarray:
        return _draw(shape, dtype, lambda n: rng.normal(mean, stddev, size=n))

    init.__name__ = "normal"
    init.config = {"name": "normal", "stddev": float(stddev), "mean": float(mean)}  # type: ignore[attr-defined]
    return init


def uniform(minval: float = -0.05, maxval: float = 0.05) -> Initializer:
    def init(shape: tuple[int, ...], rng: np.random.Generator, dtype: Any) -> np.ndarray:
        return _draw(shape, dtype, lambda n: rng.uniform(minval, maxval, size=n))

    init.__name__ = "uniform"
    init.config = {"name": "uniform", "minval": float(minval), "maxval": float(maxval)}  # type: ignore[attr-defined]
    return init


def orthogonal(shape: tuple[int, ...], rng: np.random.Generator, dtype: Any) -> np.ndarray:
    """Orthonormal rows or columns for the matrix (prod(shape[:-1]), shape[-1])."""
    rows, cols = int(np.prod(shape[:-1])) if len(shape) > 1 else 1, int(shape[-1])
    a = rng.normal(0.0, 1.0, size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.where(np.diag(r) < 0, -1.0, 1.0)  # a unique Q: Haar-distributed
    if rows < cols:
        q = q.T
    return q.reshape(shape).astype(dtype)


def uniform_epsilon(shape: tuple[int, ...], rng: np.random.Generator, dtype: Any) -> np.ndarray:
    fan_in, fan_out = _fans(shape)
    eps = np.sqrt(6.0) / np.sqrt(fan_in + fan_out)
    return _draw(shape, dtype, lambda n: rng.uniform(-eps, eps, size=n))


def glorot_uniform(shape: tuple[int, ...], rng: np.random.Generator, dtype: Any) -> np.ndarray:
    return uniform_epsilon(shape, rng, dtype)


def glorot_normal(shape: tuple[int, ...], rng: np.random.Generator, dtype: Any) -> np.ndarray:
    fan_in, fan_out = _fans(shape)
    sd = np.sqrt(2.0 / (fan_in + fan_out))
    return _draw(shape, dtype, lambda n: rng.normal(0.0, sd, size=n))


def he_uniform(shape: tuple[int, ...], rng: np.random.Generator, dtype: Any) -> np.ndarray:
    fan_in, _ = _fans(shape)
    lim = np.sqrt(6.0 / fan_in)
    return _draw(shape, dtype, lambda n: rng.uniform(-lim, lim, size=n))


def he_normal(shape: tuple[int, ...], rng: np.random.Generator, dtype: Any) -> np.ndarray:
    fan_in, _ = _fans(shape)
    sd = np.sqrt(2.0 / fan_in)
    return _draw(shape, dtype, lambda n: rng.normal(0.0, sd, size=n))


_NAMED: dict[str, Initializer] = {
    "zeros": zeros,
    "ones": ones,
    "uniform_epsilon": uniform_epsilon,
    "epsilon_uniform": uniform_epsilon,
    "glorot_uniform": glorot_uniform,
    "xavier_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "orthogonal": orthogonal,
}
_FACTORIES: dict[str, Callable[..., Initializer]] = {"constant": constant, "normal": normal,
                                                     "uniform": uniform}


def get(identifier: str | dict[str, Any] | Initializer) -> Initializer:
    """Look up an initialiser by name (``"he_normal"``), config dict or callable."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, dict):
        cfg = dict(identifier)
        name = cfg.pop("name", None)
        if name in _FACTORIES:
            return _FACTORIES[name](**cfg)
        if name in _NAMED and not cfg:
            return _NAMED[name]
        raise ValueError(f"unknown initializer config {identifier!r}")
    if isinstance(identifier, str):
        if identifier in _NAMED:
            return _NAMED[identifier]
        if identifier in _FACTORIES:
            return _FACTORIES[identifier]()
        known = sorted([*_NAMED, *_FACTORIES])
        raise ValueError(f"unknown initializer {identifier!r}; known: {', '.join(known)}")
    raise TypeError(f"initializer must be a name, config or callable, got {identifier!r}")


def serialize(init: Initializer) -> str | dict[str, Any]:
    """The JSON form of an initialiser (a name or a config dict)."""
    config = getattr(init, "config", None)
    if config is not None:
        return dict(config)
    for name, fn in _NAMED.items():
        if fn is init:
            return name
    raise ValueError(f"initializer {init!r} cannot be serialised; use a named one")
