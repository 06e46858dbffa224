r"""Loss functions J and the output error term δ^(L) = ∂J/∂z^(L).

All losses are means over the batch of m examples, so every δ carries a factor 1/m.

- ``categorical_crossentropy`` (targets one-hot, y ∈ {e_1 … e_K}) and
  ``sparse_categorical_crossentropy`` (integer labels): J = −(1/m) Σ_i log a^(L)_{i,y_i}.
  After a softmax output the fused error term is δ^(L) = (a^(L) − y)/m and log a is computed from
  z^(L) by log-sum-exp, so neither overflows nor takes log 0.
- ``binary_crossentropy``: J = −(1/m) Σ [y log a + (1 − y) log(1 − a)] per output unit (mean
  over units too). After a logistic output: δ^(L) = (a − y)/(m·K), and
  log σ(z) = −softplus(−z) keeps it finite.
- ``mse``: J = (1/m) Σ_i mean_k (a_ik − y_ik)²; ∂J/∂a = 2(a − y)/(m·K).

Without the matching output activation the losses fall back to ∂J/∂a (clipped logs).

Sequences: with an output a of shape (m, T, K) (a Dense layer at every step), the targets are
(m, T) integer labels for cross-entropy or (m, T, K) values, and J is the mean over the m·T
steps. A ``mask`` (m, T) (True = real step) leaves the padded steps out of J and δ: J is the
mean over the real steps only (as Keras computes it) and δ is zero on the padded ones.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

_EPS = {np.dtype(np.float32): 1e-7, np.dtype(np.float64): 1e-15}


class Loss:
    name: ClassVar[str] = ""
    #: name of the output activation whose δ the loss can compute directly from (a, z).
    fused_activation: ClassVar[str | None] = None
    #: whether integer class labels are the expected target form.
    sparse_targets: ClassVar[bool] = False
    #: :meth:`fused_step` computes a^(L) = g(z^(L)), J and δ^(L) in one pass over z^(L).
    fused_one_pass: ClassVar[bool] = False

    def value(self, y: np.ndarray, a: np.ndarray, z: np.ndarray | None = None,
              mask: np.ndarray | None = None) -> float:
        """J, the mean over the examples (over the real steps of sequences, see the module)."""
        y, a, z, mask = _rows(y, a, z, mask)
        if mask is None:
            return self._value(y, a, z)
        if not mask.any():
            return 0.0
        return self._value(y[mask], a[mask], None if z is None else z[mask])

    def grad(self, y: np.ndarray, a: np.ndarray, mask: np.ndarray | None = None
             ) -> np.ndarray:
        """∂J/∂a^(L) (unfused)."""
        return _masked_rows(self._grad, y, a, mask)

    def fused_delta(self, y: np.ndarray, a: np.ndarray, mask: np.ndarray | None = None
                    ) -> np.ndarray:
        """δ^(L) = ∂J/∂z^(L) for the matching output activation: (a − y)/m."""
        return _masked_rows(self._fused_delta, y, a, mask)

    def _value(self, y: np.ndarray, a: np.ndarray, z: np.ndarray | None = None) -> float:
        raise NotImplementedError

    def _grad(self, y: np.ndarray, a: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _fused_delta(self, y: np.ndarray, a: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fused_step(self, y: np.ndarray, z: np.ndarray, a: np.ndarray, delta: np.ndarray,
                   scale: float = 1.0) -> float:
        """(``fused_one_pass`` losses) Write a = g(z) and δ = scale·∂J/∂z into the given
        buffers, return J, for integer labels ``y``."""
        raise NotImplementedError

    def get_config(self) -> str:
        return self.name

    def targets(self, y: Any, n: int, k: int, dtype: np.dtype, name: str = "y") -> np.ndarray:
        """``y`` in the form this loss wants for ``n`` examples and ``k`` outputs: rows of k
        floats of ``dtype`` (integer labels for cross-entropy, see there); errors name ``y``."""
        y = _basic_targets(y, n, name)
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2 or y.shape[1] != k:
            raise ValueError(f"{name} has shape {y.shape} but the model has {k} outputs")
        return np.ascontiguousarray(y, dtype=dtype)

    def sequence_targets(self, y: Any, n: int, shape: tuple[int, int], dtype: np.dtype,
                         name: str = "y") -> np.ndarray:
        """``y`` for a sequence output of ``shape`` (T, K) per example: (n, T, K) floats."""
        steps, k = shape
        y = _basic_targets(y, n, name)
        if k == 1 and y.shape[1:] == (steps,):
            y = y[..., None]
        if y.shape[1:] != (steps, k):
            raise ValueError(f"{name} has shape {y.shape} but the model outputs sequences of "
                             f"shape ({steps}, {k}) per example")
        return np.ascontiguousarray(y, dtype=dtype)


def _rows(y: np.ndarray, a: np.ndarray, z: np.ndarray | None, mask: np.ndarray | None
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Sequences as rows: a (m, T, K) → (m·T, K), y and z alike, the mask (m, T) → (m·T,)."""
    if a.ndim == 3:
        k = a.shape[2]
        a = a.reshape(-1, k)
        z = None if z is None else z.reshape(-1, k)
        y = y.reshape(-1) if y.ndim == 2 else y.reshape(-1, k)
    if mask is not None:
        mask = np.asarray(mask, bool).reshape(-1)
        if mask.shape[0] != a.shape[0]:
            raise ValueError(f"the mask covers {mask.shape[0]} steps, the output has "
                             f"{a.shape[0]}")
    return y, a, z, mask


def _masked_rows(fn: Any, y: np.ndarray, a: np.ndarray, mask: np.ndarray | None
                 ) -> np.ndarray:
    """fn(y, a) on the real rows only (its 1/m over them), zero on the padded rows."""
    shape = a.shape
    y2, a2, _, mask = _rows(y, a, None, mask)
    if mask is None:
        return fn(y2, a2).reshape(shape)
    out = np.zeros_like(a2)
    if mask.any():
        out[mask] = fn(y2[mask], a2[mask])
    return out.reshape(shape)


def _labels(y: np.ndarray, k: int, name: str) -> np.ndarray:
    """Integer class labels in 0..k−1 (int64), from ints or integral floats."""
    if y.dtype.kind == "f" and np.any(y != np.rint(y)):
        raise ValueError(f"{name} holds non-integer class labels")
    labels = y.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        bad = labels[(labels < 0) | (labels >= k)].flat[0]
        raise ValueError(f"{name} has label {bad}, out of range for the model's {k} "
                         f"output classes (0..{k - 1})")
    return labels


def _basic_targets(y: Any, n: int, name: str) -> np.ndarray:
    """Numeric, one per example, finite."""
    y = np.asarray(y)
    if y.dtype == object or y.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {y.dtype}")
    if y.shape[0] != n:
        raise ValueError(f"x has {n} rows but {name} has {y.shape[0]}")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError(f"{name} contains NaN or inf")
    return y


def _logsumexp(z: np.ndarray) -> np.ndarray:
    zmax = z.max(axis=1, keepdims=True)
    return (np.log(np.exp(z - zmax).sum(axis=1, keepdims=True)) + zmax)[:, 0]


class CategoricalCrossentropy(Loss):
    """Targets: one-hot rows, or integer labels (then identical to the sparse variant)."""

    name = "categorical_crossentropy"
    fused_activation = "softmax"
    fused_one_pass = True

    def _picked(self, y: np.ndarray, t: np.ndarray) -> np.ndarray:
        """t[i, y_i] for label vectors, Σ_k y_ik t_ik for one-hot rows."""
        if y.ndim == 1:
            return t[np.arange(t.shape[0]), y]
        return (y * t).sum(axis=1)

    def _value(self, y: np.ndarray, a: np.ndarray, z: np.ndarray | None = None) -> float:
        if z is not None:  # log softmax(z) by log-sum-exp: exact and finite
            logp = self._picked(y, z) - _logsumexp(z) if y.ndim == 1 else \
                ((y * z).sum(axis=1) - _logsumexp(z) * y.sum(axis=1))
            return float(-logp.mean())
        eps = _EPS.get(a.dtype, 1e-7)
        return float(-self._picked(y, np.log(np.clip(a, eps, 1.0))).mean())

    def _grad(self, y: np.ndarray, a: np.ndarray) -> np.ndarray:
        m = a.shape[0]
        eps = _EPS.get(a.dtype, 1e-7)
        g = np.zeros_like(a)
        if y.ndim == 1:
            rows = np.arange(m)
            g[rows, y] = -1.0 / (m * np.clip(a[rows, y], eps, None))
        else:
            g[...] = -y / (m * np.clip(a, eps, None))
        return g

    def targets(self, y: Any, n: int, k: int, dtype: np.dtype, name: str = "y") -> np.ndarray:
        """Integer labels (int64) when given as labels (also as one column), else one-hot rows."""
        y = _basic_targets(y, n, name)
        if y.ndim == 2 and y.shape[1] == 1 and k > 1:
            y = y[:, 0]
        if y.ndim == 1:
            return _labels(y, k, name)
        if self.sparse_targets:
            raise ValueError(f"sparse_categorical_crossentropy needs integer labels; {name} "
                             f"has shape {y.shape}")
        return super().targets(y, n, k, dtype, name)

    def sequence_targets(self, y: Any, n: int, shape: tuple[int, int], dtype: np.dtype,
                         name: str = "y") -> np.ndarray:
        """(n, T) integer labels (int64), or one-hot (n, T, K) rows for the categorical loss."""
        steps, k = shape
        y = _basic_targets(y, n, name)
        if y.shape[1:] == (steps,):
            return _labels(y, k, name)
        if self.sparse_targets:
            raise ValueError(f"sparse_categorical_crossentropy on sequences needs (n, T) = "
                             f"(n, {steps}) integer labels; {name} has shape {y.shape}")
        return super().sequence_targets(y, n, shape, dtype, name)

    def _fused_delta(self, y: np.ndarray, a: np.ndarray) -> np.ndarray:
        m = a.shape[0]
        delta = a.copy()
        if y.ndim == 1:
            delta[np.arange(m), y] -= 1
        else:
            delta -= y
        delta *= 1.0 / m
        return delta


    def fused_step(self, y: np.ndarray, z: np.ndarray, a: np.ndarray, delta: np.ndarray,
                   scale: float = 1.0, mask: np.ndarray | None = None) -> float:
        """Softmax output and cross-entropy in one pass over z^(L), for integer labels ``y``.

        Writes a = softmax(z) and δ = scale·(a − y)/m into the given buffers and returns J
        (buffers for the last batch shape are kept: an epoch alternates between two at most).
        log-sum-exp is shared between a and J: J = mean(log Σ e^(z − max z) + max z − z_y).
        ``mask`` (m,) bool: only its rows count; m is their number and δ is 0 on the others.
        """
        m, k = z.shape
        if mask is not None:
            return self._masked_step(y, z, a, delta, scale, np.asarray(mask, bool))
        if m == 1:  # online learning: scalars where NumPy's per-call cost would dominate
            return self._fused_row(int(y[0]), z, a, delta, scale)
        views = self.__dict__.get("_views")
        if views is None or views[0] != m or views[1] != k or views[2] is not z.dtype:
            views = self._views = (m, k, z.dtype, np.empty((m, 1), z.dtype),
                                   np.empty((m, 1), z.dtype), np.arange(m, dtype=np.int64) * k,
                                   np.empty(m, np.int64), np.empty(m, z.dtype))
        zmax, s, offsets, flat, picked = views[3:]
        np.maximum.reduce(z, axis=1, keepdims=True, out=zmax)
        np.subtract(z, zmax, out=a)
        np.exp(a, out=a)
        np.add.reduce(a, axis=1, keepdims=True, out=s)
        np.divide(a, s, out=a)
        np.add(offsets, y, out=flat)
        np.take(z, flat, out=picked)  # z[i, y_i]
        np.log(s, out=s)
        s += zmax
        np.subtract(s[:, 0], picked, out=picked)  # −log a_{i, y_i} per example
        loss = float(np.add.reduce(picked)) / m
        c = scale / m
        np.multiply(a, c, out=delta)
        dflat = delta.reshape(-1)
        dflat[flat] -= c
        return loss


    def _masked_step(self, y: np.ndarray, z: np.ndarray, a: np.ndarray, delta: np.ndarray,
                     scale: float, mask: np.ndarray) -> float:
        """:meth:`fused_step` over the real rows: J = Σ_real −log a_{i,y_i} / n_real."""
        real = int(np.count_nonzero(mask))
        loss = self.fused_step(y, z, a, delta, scale * z.shape[0] / max(real, 1))
        if real == z.shape[0]:
            return loss
        delta[~mask] = 0
        if real == 0:
            return 0.0
        lse = np.log(np.exp(z[mask] - z[mask].max(axis=1, keepdims=True)).sum(axis=1))
        picked = z[mask, y[mask]] - z[mask].max(axis=1)
        return float(np.sum(lse - picked)) / real

    @staticmethod
    def _fused_row(label: int, z: np.ndarray, a: np.ndarray, delta: np.ndarray,
                   scale: float) -> float:
        """:meth:`fused_step` for a batch of one row."""
        zmax = z.max()
        np.subtract(z, zmax, out=a)
        np.exp(a, out=a)
        s = float(a.sum())
        a *= 1.0 / s
        loss = math.log(s) + float(zmax) - float(z[0, label])
        np.multiply(a, scale, out=delta)
        delta[0, label] -= scale
        return loss


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    name = "sparse_categorical_crossentropy"
    sparse_targets = True


class BinaryCrossentropy(Loss):
    name = "binary_crossentropy"
    fused_activation = "logistic"

    def targets(self, y: Any, n: int, k: int, dtype: np.dtype, name: str = "y") -> np.ndarray:
        y = super().targets(y, n, k, dtype, name)
        if y.size and (y.min() < 0 or y.max() > 1):
            raise ValueError(f"{name} must lie in [0, 1] for binary_crossentropy")
        return y

    def _value(self, y: np.ndarray, a: np.ndarray, z: np.ndarray | None = None) -> float:
        if z is not None:
            # −[y log σ(z) + (1−y) log(1−σ(z))] = max(z,0) − z y + log(1 + e^−|z|)
            per = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
            return float(per.mean())
        eps = _EPS.get(a.dtype, 1e-7)
        ac = np.clip(a, eps, 1 - eps)
        return float(-(y * np.log(ac) + (1 - y) * np.log(1 - ac)).mean())

    def _grad(self, y: np.ndarray, a: np.ndarray) -> np.ndarray:
        eps = _EPS.get(a.dtype, 1e-7)
        ac = np.clip(a, eps, 1 - eps)
        return ((ac - y) / (ac * (1 - ac)) / a.size).astype(a.dtype, copy=False)

    def _fused_delta(self, y: np.ndarray, a: np.ndarray) -> np.ndarray:
        return ((a - y) * (1.0 / a.size)).astype(a.dtype, copy=False)


class MeanSquaredError(Loss):
    name = "mse"

    def _value(self, y: np.ndarray, a: np.ndarray, z: np.ndarray | None = None) -> float:
        d = a - y
        return float((d * d).mean())

    def _grad(self, y: np.ndarray, a: np.ndarray) -> np.ndarray:
        return ((a - y) * (2.0 / a.size)).astype(a.dtype, copy=False)


_LOSSES = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
}


def get(identifier: str | Loss) -> Loss:
    if isinstance(identifier, Loss):
        return identifier
    if not isinstance(identifier, str) or identifier not in _LOSSES:
        raise ValueError(f"unknown loss {identifier!r}; known: {', '.join(sorted(_LOSSES))}")
    return _LOSSES[identifier]()
