r"""Soft additive attention (Bahdanau et al. 2015; "Show, Attend and Tell", Xu et al. 2015).

Inputs: a query h (m, q) — or one per decoder step, (m, T, q) — and features f (m, L, d), the L
locations of a conv feature map (optionally a mask over L). For every query row t:

    e_{t,l} = vᵀ tanh(W_q h_t + W_f f_l + b)         score of location l
    α_{t,l} = exp(e_{t,l}) / Σ_{l' real} exp(e_{t,l'})  (masked locations: α = 0)
    c_t     = Σ_l α_{t,l} f_l                          context vector

Outputs: the context c (m, [T,] d) and the weights α (m, [T,] L); Σ_l α_{t,l} = 1. With a
query per step (Luong-style, after an LSTM with ``return_sequences``) everything is one batch of
tensor products over T: the features' projection W_f f is computed once for all steps.

Backward (g_c = ∂J/∂c, g_α = ∂J/∂α):

    ∂J/∂α   = g_α + g_c fᵀ                        ∂J/∂f  = αᵀ g_c + (Σ_t ∂J/∂P) W_fᵀ
    ∂J/∂e   = α ⊙ (∂J/∂α − Σ_l α ∂J/∂α)           (softmax)
    ∂J/∂P   = (∂J/∂e ⊗ v) ⊙ (1 − S²), S = tanh(P)   ∂J/∂v = Σ ∂J/∂e · S
    ∂J/∂W_q = Σ h (Σ_l ∂J/∂P)ᵀ, ∂J/∂h = (Σ_l ∂J/∂P) W_qᵀ;  ∂J/∂b = Σ ∂J/∂P

The mask over L comes from the features' mask (the model graph's sequence mask) or from a
third input of shape (m, L), 1 = real location, 0 = padding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thetanet import initializers as _initializers
from thetanet.layers.base import Layer, Shape, as_shape, register_layer
from thetanet.layers.weighted import check_budget, positive_int


@register_layer
class AdditiveAttention(Layer):
    """Additive attention with ``units`` hidden units; outputs (context, α)."""

    multi_input = True
    n_outputs = 2
    accepts_mask = True
    linear_backward = True
    param_names = ("query_kernel", "features_kernel", "bias", "score_vector")

    def __init__(self, units: int, kernel_initializer: Any = "glorot_uniform",
                 name: str | None = None) -> None:
        super().__init__(name)
        self.units = positive_int(units, "AdditiveAttention units")
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self._cache: dict[str, Any] = {}

    def build(self, input_shape: Any, *, dtype: Any, rng: np.random.Generator) -> list[Shape]:
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) not in (2, 3):
            raise ValueError("AdditiveAttention takes [query, features] or [query, features, "
                             "location_mask]")
        q_shape, f_shape = as_shape(input_shape[0]), as_shape(input_shape[1])
        if len(q_shape) not in (1, 2) or len(f_shape) != 2:
            raise ValueError(f"AdditiveAttention needs a query (q,) or (T, q) and features "
                             f"(L, d), got {q_shape} and {f_shape}")
        n_loc, d = f_shape
        if len(input_shape) == 3 and as_shape(input_shape[2]) != (n_loc,):
            raise ValueError(f"the location mask must have shape ({n_loc},), got "
                             f"{as_shape(input_shape[2])}")
        lead = q_shape[:-1]
        outs = [lead + (d,), lead + (n_loc,)]
        self._set_shapes(q_shape, outs[0], dtype)
        self.output_shapes = outs
        u, init = self.units, self.kernel_initializer
        check_budget((q_shape[-1] + d + 2) * u, f"AdditiveAttention {self.name!r}")
        self.query_kernel = np.ascontiguousarray(init((q_shape[-1], u), rng, self.dtype))
        self.features_kernel = np.ascontiguousarray(init((d, u), rng, self.dtype))
        self.bias = np.zeros(u, self.dtype)
        self.score_vector = np.ascontiguousarray(init((u, 1), rng, self.dtype)[:, 0])
        self._grads = [np.zeros_like(p) for p in self.params]
        return outs

    @property
    def params(self) -> list[np.ndarray]:
        return [self.query_kernel, self.features_kernel, self.bias, self.score_vector]

    @property
    def grads(self) -> list[np.ndarray]:
        return self._grads

    def compute_mask(self, x: Any, mask: Any) -> Any:
        """Both outputs keep the query's mask over T (None for one query per example)."""
        q_mask = mask[0] if mask else None
        return [q_mask, q_mask]

    @staticmethod
    def _locations(x: Any, mask: Any) -> np.ndarray | None:
        """The (m, L) bool mask of real locations, or None when all are real."""
        m = mask[1] if mask is not None and len(mask) > 1 else None
        if len(x) > 2:
            given = np.asarray(x[2]) > 0.5
            m = given if m is None else np.logical_and(m, given)
        return None if m is None else np.asarray(m, dtype=bool)

    def forward(self, x: Any, training: bool = False, mask: Any = None
                ) -> tuple[np.ndarray, np.ndarray]:
        h, f = np.asarray(x[0], self.dtype), np.asarray(x[1], self.dtype)
        single = h.ndim == 2
        h3 = h[:, None, :] if single else h  # (m, T, q)
        s = np.tanh((h3 @ self.query_kernel)[:, :, None, :]
                    + (f @ self.features_kernel)[:, None, :, :] + self.bias)  # (m, T, L, u)
        e = s @ self.score_vector  # (m, T, L)
        loc = self._locations(x, mask)
        if loc is not None:
            e = np.where(loc[:, None, :], e, -np.inf)
        alpha = _masked_softmax(e)
        context = alpha @ f  # (m, T, d)
        self._cache = {"h": h3, "f": f, "s": s, "alpha": alpha, "single": single}
        if single:
            return context[:, 0], alpha[:, 0]
        return context, alpha

    def backward(self, grad: Any, *, grad_is_preactivation: bool = False) -> list[Any]:
        c = self._cache
        h, f, s, alpha = c["h"], c["f"], c["s"], c["alpha"]
        g_c, g_a = (np.asarray(g)[:, None] if c["single"] else np.asarray(g) for g in grad)
        d_alpha = g_a + g_c @ f.transpose(0, 2, 1)  # (m, T, L)
        d_e = alpha * (d_alpha - (alpha * d_alpha).sum(axis=-1, keepdims=True))
        d_f = alpha.transpose(0, 2, 1) @ g_c  # (m, L, d)
        d_p = (d_e[..., None] * self.score_vector) * (1.0 - s * s)  # (m, T, L, u)
        d_pq, d_pf = d_p.sum(axis=2), d_p.sum(axis=1)  # (m, T, u), (m, L, u)
        g_qk, g_fk, g_b, g_v = self._grads
        np.copyto(g_qk, h.reshape(-1, h.shape[-1]).T @ d_pq.reshape(-1, self.units))
        np.copyto(g_fk, f.reshape(-1, f.shape[-1]).T @ d_pf.reshape(-1, self.units))
        np.copyto(g_b, d_p.sum(axis=(0, 1, 2)))
        np.copyto(g_v, np.einsum("mtl,mtlu->u", d_e, s))
        if not self.needs_input_grad:
            return [None, None, None]
        d_h = d_pq @ self.query_kernel.T
        d_f += d_pf @ self.features_kernel.T
        return [d_h[:, 0] if c["single"] else d_h, d_f, None]

    def get_config(self) -> dict[str, Any]:
        return {"units": self.units,
                "kernel_initializer": _initializers.serialize(self.kernel_initializer),
                "name": self.name}


def _masked_softmax(e: np.ndarray) -> np.ndarray:
    """softmax over the last axis; −inf entries get α = 0 (a row with none real: all 0)."""
    top = np.max(e, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    w = np.exp(e - top)
    total = w.sum(axis=-1, keepdims=True)
    return w / np.where(total > 0, total, 1.0)


#: Keras's name for the additive (Bahdanau) form is AdditiveAttention; the short one too.
Attention = AdditiveAttention
