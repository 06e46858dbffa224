r"""Optimisers: update rules only, applied in place to the model's parameter arrays.

The formulas are PyTorch's (torch.optim), so results match step for step:

- ``SGD``: v ← μ v + g (v = g at the first step); step = g + μ v (Nesterov) or v; θ ← θ − η step.
  With μ = 0 this is the lecture's plain gradient descent θ ← θ − η ∂J/∂θ.
- ``Adam``: m ← β₁ m + (1 − β₁) g; v ← β₂ v + (1 − β₂) g²;
  θ ← θ − (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε).

One protocol (:class:`Optimizer`): ``step(params, grads, rows=None)`` applies one update given
g = ∂J/∂θ per parameter; ``get_config`` / ``get_state`` / ``set_state`` describe and resume it.
Two speed paths are named parts of that protocol, each with a safe default:

- **row hints** (``uses_rows``): ``rows`` gives, per parameter, the rows whose gradient may be
  non-zero (a kernel fed by sparse inputs); lazy Adam updates only those. Others ignore it.
- **folded learning rate** (``folded_learning_rate``): when a step is exactly θ ← θ − η g
  (SGD without momentum), backprop, being linear in δ^(L), may start from η·δ^(L): the
  gradients come out as η·∂J/∂θ and each layer's update is one subtraction
  (``apply_folded``), done right after that layer's backward while its gradient is still in
  cache; ``end_folded_step`` counts the step. Only then do the layers' ``grads`` hold
  η·∂J/∂θ instead of ∂J/∂θ after a training step (see :mod:`thetanet.training`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

Rows = Sequence["np.ndarray | None"]


class Optimizer:
    """The optimiser protocol (see the module docstring)."""

    name: ClassVar[str] = ""
    #: ``step`` makes use of the ``rows`` hints (otherwise the caller need not compute them).
    uses_rows: bool = False

    def __init__(self, learning_rate: float) -> None:
        if not np.isfinite(learning_rate) or learning_rate <= 0:
            raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
        self.learning_rate = float(learning_rate)
        self.iterations = 0

    def step(self, params: list[np.ndarray], grads: list[np.ndarray],
             rows: Rows | None = None) -> None:
        """One update of ``params`` in place from g = ∂J/∂θ (``grads``, left unchanged).
        ``rows``: optional per-parameter row hints (``None`` or the sorted rows whose gradient
        may be non-zero); optimisers without ``uses_rows`` ignore them."""
        raise NotImplementedError

    # -- the folded learning rate (plain gradient descent) -----------------------------------
    def folded_learning_rate(self) -> float | None:
        """η when :meth:`step` is exactly θ ← θ − η ∂J/∂θ, so the caller may fold η into
        backprop and finish the step with :meth:`apply_folded` / :meth:`end_folded_step`;
        None otherwise (the default)."""
        return None

    def apply_folded(self, params: list[np.ndarray], scaled_grads: list[np.ndarray]) -> None:
        """θ ← θ − s for s = η·∂J/∂θ, for some of the parameters (e.g. one layer's): part of a
        step begun by folding η into δ^(L). The step is counted by :meth:`end_folded_step`."""
        for p, g in zip(params, scaled_grads):
            np.subtract(p, g, out=p)

    def end_folded_step(self) -> None:
        """Count a step done by :meth:`apply_folded` on every parameter."""
        self.iterations += 1

    # -- description and state ---------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "learning_rate": self.learning_rate}

    def get_state(self) -> dict[str, Any]:
        """Arrays and counters needed to resume exactly (slots in parameter order)."""
        return {"iterations": self.iterations}

    def set_state(self, state: dict[str, Any]) -> None:
        self.iterations = int(state["iterations"])


class SGD(Optimizer):
    name = "sgd"

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False) -> None:
        super().__init__(learning_rate)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.velocity: list[np.ndarray] = []

    def step(self, params: list[np.ndarray], grads: list[np.ndarray],
             rows: Rows | None = None) -> None:
        lr, mu = self.learning_rate, self.momentum
        scratch = self._scratch_for(params)
        if mu == 0:
            for p, g, tmp in zip(params, grads, scratch):
                np.multiply(g, lr, out=tmp)
                np.subtract(p, tmp, out=p)
            self.iterations += 1
            return
        first = not self.velocity
        if first:
            self.velocity = [g.copy() for g in grads]
        for p, g, v, tmp in zip(params, grads, self.velocity, scratch):
            if not first:
                v *= mu
                v += g
            if self.nesterov:
                np.multiply(v, mu, out=tmp)
                tmp += g
                tmp *= lr
            else:
                np.multiply(v, lr, out=tmp)
            np.subtract(p, tmp, out=p)
        self.iterations += 1

    def _scratch_for(self, params: list[np.ndarray]) -> list[np.ndarray]:
        scratch = self.__dict__.get("_scratch")
        if (scratch is None or len(scratch) != len(params)
                or any(t.shape != p.shape or t.dtype != p.dtype
                       for t, p in zip(scratch, params))):
            scratch = self._scratch = [np.empty_like(p) for p in params]
        return scratch

    def folded_learning_rate(self) -> float | None:
        """η without momentum (θ ← θ − η g); a subclass with its own ``step`` opts out."""
        if self.momentum == 0 and type(self).step is SGD.step:
            return self.learning_rate
        return None

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}

    def get_state(self) -> dict[str, Any]:
        return {"iterations": self.iterations, "velocity": list(self.velocity)}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.velocity = [np.array(v) for v in state.get("velocity", [])]


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with PyTorch's update formula.

    ``lazy=True`` skips the rows of a 2-D parameter whose gradient row is exactly zero in this
    step (their moments are not decayed either), as TensorFlow's LazyAdam / PyTorch's
    SparseAdam. With a wide sparse input (one-hot or WordNet features) most kernel rows see
    no input in a mini-batch, so this does a fraction of the work; it is not identical to
    Adam, since untouched rows keep their moments until their next non-zero gradient.
    """

    name = "adam"

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, lazy: bool = False) -> None:
        super().__init__(learning_rate)
        for nm, b in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= b < 1:
                raise ValueError(f"{nm} must be in [0, 1), got {b!r}")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive, got {epsilon!r}")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.lazy = bool(lazy)
        self.m: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self._scratch: list[np.ndarray] = []
        self._row_buffers: dict[int, np.ndarray] = {}  # lazy updates: gathered rows, by id(p)

    @property
    def uses_rows(self) -> bool:  # type: ignore[override]
        return self.lazy

    def step(self, params: list[np.ndarray], grads: list[np.ndarray],
             rows: Rows | None = None) -> None:
        """One update. ``rows`` (used by lazy Adam): per parameter, ``None`` or a sorted array
        of the rows whose gradient may be non-zero (all others are zero), e.g. from
        ``Dense.grad_rows``; it saves scanning the gradient for them."""
        if not self.m:
            self.m = [np.zeros_like(p) for p in params]
            self.v = [np.zeros_like(p) for p in params]
        if len(self._scratch) != len(params):
            self._scratch = [np.empty_like(p) for p in params]
        self.iterations += 1
        t = self.iterations
        b1, b2 = self.beta_1, self.beta_2
        step_size = self.learning_rate / (1 - b1 ** t)
        sqrt_bc2 = math.sqrt(1 - b2 ** t)
        # step·m/(√v/√bc2 + ε) = (step·√bc2)·m/(√v + ε√bc2): the bias corrections are scalars
        eps_hat, step_hat = self.epsilon * sqrt_bc2, step_size * sqrt_bc2
        lazy = self.lazy
        for i, (p, g, m, v, tmp) in enumerate(zip(params, grads, self.m, self.v, self._scratch)):
            if lazy and g.ndim == 2 and g.shape[0] > 64:
                hint = None if rows is None else rows[i]
                r = np.flatnonzero(g.any(axis=1)) if hint is None else hint
                if r.size < 0.5 * g.shape[0]:
                    self._update_rows(p, g, m, v, tmp, r, b1, b2, eps_hat, step_hat)
                    continue
            self._update(p, g, m, v, tmp, b1, b2, eps_hat, step_hat)

    @staticmethod
    def _update(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, tmp: np.ndarray,
                b1: float, b2: float, eps_hat: float, step_hat: float) -> None:
        # In place, one scratch buffer, 12 passes: no temporaries of the parameter's size.
        np.subtract(m, g, out=m)  # m ← β₁ m + (1 − β₁) g  as  β₁ (m − g) + g
        m *= b1
        m += g
        np.multiply(g, g, out=tmp)  # v ← β₂ v + (1 − β₂) g²  as  β₂ (v − g²) + g²
        v -= tmp
        v *= b2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += eps_hat
        np.divide(m, tmp, out=tmp)
        tmp *= step_hat
        p -= tmp

    def _update_rows(self, p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray,
                     tmp: np.ndarray, rows: np.ndarray, b1: float, b2: float, eps_hat: float,
                     step_hat: float) -> None:
        """Adam on the given rows only: runs of consecutive rows (a dense input block) as
        in-place slices, scattered rows (sparse input columns) by gather/scatter. A hint
        that carries the sparse product's compact rows (``blockmatrix.TouchedRows``: its
        ``dense`` slices and ``sparse`` (rows, values) with ``g[rows] == values``) saves
        finding the runs and gathering g; elementwise, the arithmetic is the same."""
        if rows.size == 0:
            return
        args = (b1, b2, eps_hat, step_hat)
        compact = getattr(rows, "sparse", None)
        if compact is not None:
            for sl in rows.dense:  # type: ignore[attr-defined]
                self._update(p[sl], g[sl], m[sl], v[sl], tmp[sl], *args)
            self._gathered(p, g, m, v, compact[0], compact[1], *args)
            return
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        starts = np.concatenate(([0], breaks))
        ends = np.concatenate((breaks, [rows.size]))
        long = (ends - starts) >= 16
        for a, b in zip(starts[long].tolist(), ends[long].tolist()):
            sl = slice(int(rows[a]), int(rows[b - 1]) + 1)
            self._update(p[sl], g[sl], m[sl], v[sl], tmp[sl], *args)
        if not long.all():
            self._gathered(p, g, m, v, rows[np.repeat(~long, ends - starts)], None, *args)

    def _gathered(self, p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray,
                  rows: np.ndarray, g_rows: np.ndarray | None, b1: float, b2: float,
                  eps_hat: float, step_hat: float) -> None:
        """Adam on scattered ``rows``: gather p, m, v (and g, unless ``g_rows`` = g[rows]
        is given), update, scatter back."""
        n = rows.size
        if n == 0:
            return
        # gather into reused buffers: fresh multi-MB arrays every step cost page faults
        buf = self._row_buffers.get(id(p))
        if buf is None or buf.shape[1] < n or buf.shape[2:] != p.shape[1:]:
            buf = np.empty((5, max(n, 2 * (0 if buf is None else buf.shape[1])), *p.shape[1:]),
                           p.dtype)
            self._row_buffers[id(p)] = buf
        pr, gr, mr, vr, tr = (b[:n] for b in buf)
        if g_rows is None or g_rows.dtype != p.dtype or g_rows.shape != gr.shape:
            np.take(g, rows, axis=0, out=gr)
        else:
            gr = g_rows
        for src, dst in ((p, pr), (m, mr), (v, vr)):
            np.take(src, rows, axis=0, out=dst)
        self._update(pr, gr, mr, vr, tr, b1, b2, eps_hat, step_hat)
        m[rows] = mr
        v[rows] = vr
        p[rows] = pr

    def get_config(self) -> dict[str, Any]:
        cfg = {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
               "epsilon": self.epsilon}
        if self.lazy:
            cfg["lazy"] = True
        return cfg

    def get_state(self) -> dict[str, Any]:
        return {"iterations": self.iterations, "m": list(self.m), "v": list(self.v)}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.m = [np.array(a) for a in state.get("m", [])]
        self.v = [np.array(a) for a in state.get("v", [])]


_OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {"sgd": SGD, "adam": Adam}


def get(identifier: str | dict[str, Any] | Optimizer) -> Optimizer:
    """An optimiser from a name ("sgd", "adam"), a config dict or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        cfg = dict(identifier)
        name = cfg.pop("name", None)
        if name not in _OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(_OPTIMIZERS)}")
        return _OPTIMIZERS[name](**cfg)
    if isinstance(identifier, str) and identifier.lower() in _OPTIMIZERS:
        return _OPTIMIZERS[identifier.lower()]()
    raise ValueError(f"unknown optimizer {identifier!r}; known: {', '.join(_OPTIMIZERS)}")
