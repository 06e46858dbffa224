r"""The captioner's decoder pieces, forward and backward: embedding, LSTM, additive attention.

Notation: B examples, T steps, L feature-map locations of width d, u LSTM units, a attention
units. Each piece caches in ``forward`` what its ``backward`` needs; ``backward`` takes ∂J/∂
(its outputs), fills ``grads`` (same order as ``params``) and returns ∂J/∂(its inputs).

- **Embedding**: x_t = E[w_t] (a row of E per token; ∂J/∂E adds each step's δ to its row).
- **LSTM** (gate order i, f, g, o; logistic σ, tanh):

      z_t = x_t W + h_{t−1} U + b,  i, f, o = σ(z_i, z_f, z_o),  g = tanh(z_g)
      c_t = f ⊙ c_{t−1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)

  backpropagated through time from ∂J/∂h_t, carrying ∂J/∂c_t back through f.
- **Additive attention** (Bahdanau; "Show, Attend and Tell"), query h_t, features f_l:

      e_tl = vᵀ tanh(f_l W_f + h_t W_q + b_q),  α_t = softmax_l(e_t),  ctx_t = Σ_l α_tl f_l

  so Σ_l α_tl = 1. Backward: ∂J/∂α_tl = ∂J/∂ctx_t · f_l, ∂J/∂e_t = α_t ⊙ (∂J/∂α_t −
  Σ_l α_tl ∂J/∂α_tl), then through tanh to W_f, W_q, b_q, v and both inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thetanet import initializers as _init

__all__ = ["AdditiveAttention", "Embedding", "LSTMDecoder"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + e^−z), without overflow


class Embedding:
    """Token ids (B, T) → vectors (B, T, e): rows of E (V, e)."""

    def __init__(self, vocab: int, dim: int, rng: np.random.Generator, dtype: Any) -> None:
        self.E = (rng.uniform(-0.05, 0.05, (vocab, dim))).astype(dtype)
        self.params = [self.E]
        self.grads = [np.zeros_like(self.E)]
        self._ids: np.ndarray | None = None

    def forward(self, ids: np.ndarray) -> np.ndarray:
        if ids.min(initial=0) < 0 or ids.max(initial=0) >= self.E.shape[0]:
            raise ValueError(f"token ids must be in 0..{self.E.shape[0] - 1}")
        self._ids = ids
        return self.E[ids]

    def backward(self, grad: np.ndarray) -> None:
        g = self.grads[0]
        g[...] = 0
        np.add.at(g, self._ids.ravel(), grad.reshape(-1, g.shape[1]))


class LSTMDecoder:
    """LSTM over (B, T, e) inputs from the initial state (h_0, c_0); returns H (B, T, u)."""

    def __init__(self, input_dim: int, units: int, rng: np.random.Generator, dtype: Any
                 ) -> None:
        u = units
        self.W = _init.glorot_uniform((input_dim, 4 * u), rng, dtype)
        self.U = _init.glorot_uniform((u, 4 * u), rng, dtype)
        self.b = np.zeros(4 * u, dtype)
        self.b[u:2 * u] = 1.0  # forget gate open at first: the cell remembers
        self.params = [self.W, self.U, self.b]
        self.grads = [np.zeros_like(p) for p in self.params]
        self.units = u
        self._cache: Any = None

    def forward(self, x: np.ndarray, h0: np.ndarray, c0: np.ndarray) -> np.ndarray:
        B, T, _ = x.shape
        u = self.units
        xw = x @ self.W + self.b  # (B, T, 4u): the input part of every step at once
        H = np.empty((B, T, u), x.dtype)
        C = np.empty((B, T, u), x.dtype)
        gates = np.empty((B, T, 4 * u), x.dtype)
        h, c = h0, c0
        for t in range(T):
            z = xw[:, t] + h @ self.U
            g = gates[:, t]
            g[:, :2 * u] = _sigmoid(z[:, :2 * u])
            g[:, 2 * u:3 * u] = np.tanh(z[:, 2 * u:3 * u])
            g[:, 3 * u:] = _sigmoid(z[:, 3 * u:])
            c = g[:, u:2 * u] * c + g[:, :u] * g[:, 2 * u:3 * u]
            h = g[:, 3 * u:] * np.tanh(c)
            C[:, t], H[:, t] = c, h
        self._cache = (x, h0, c0, H, C, gates)
        return H

    def backward(self, dH: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """∂J/∂H → (∂J/∂x, ∂J/∂h_0, ∂J/∂c_0); fills ∂J/∂W, ∂J/∂U, ∂J/∂b."""
        x, h0, c0, H, C, gates = self._cache
        B, T, u = H.shape
        dz = np.empty_like(gates)
        dh_next = np.zeros_like(h0)
        dc = np.zeros_like(c0)
        for t in range(T - 1, -1, -1):
            g = gates[:, t]
            i, f, gg, o = g[:, :u], g[:, u:2 * u], g[:, 2 * u:3 * u], g[:, 3 * u:]
            tc = np.tanh(C[:, t])
            dh = dH[:, t] + dh_next
            dc = dc + dh * o * (1 - tc * tc)
            c_prev = C[:, t - 1] if t else c0
            d = dz[:, t]
            d[:, :u] = dc * gg * i * (1 - i)
            d[:, u:2 * u] = dc * c_prev * f * (1 - f)
            d[:, 2 * u:3 * u] = dc * i * (1 - gg * gg)
            d[:, 3 * u:] = dh * tc * o * (1 - o)
            dc = dc * f
            dh_next = d @ self.U.T
        h_prev = np.concatenate([h0[:, None], H[:, :-1]], axis=1)
        flat = dz.reshape(B * T, 4 * u)
        self.grads[0][...] = x.reshape(B * T, -1).T @ flat
        self.grads[1][...] = h_prev.reshape(B * T, u).T @ flat
        self.grads[2][...] = flat.sum(axis=0)
        return dz @ self.W.T, dh_next, dc


class AdditiveAttention:
    """α and the context for queries H (B, T, u) over features F (B, L, d)."""

    def __init__(self, feature_dim: int, query_dim: int, units: int, rng: np.random.Generator,
                 dtype: Any) -> None:
        self.Wf = _init.glorot_uniform((feature_dim, units), rng, dtype)
        self.Wq = _init.glorot_uniform((query_dim, units), rng, dtype)
        self.bq = np.zeros(units, dtype)
        self.v = _init.glorot_uniform((units, 1), rng, dtype)[:, 0].copy()
        self.params = [self.Wf, self.Wq, self.bq, self.v]
        self.grads = [np.zeros_like(p) for p in self.params]
        self._cache: Any = None

    def forward(self, H: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(context (B, T, d), α (B, T, L))."""
        S = np.tanh((F @ self.Wf)[:, None] + (H @ self.Wq + self.bq)[:, :, None])  # B,T,L,a
        e = S @ self.v
        e -= e.max(axis=2, keepdims=True)
        alpha = np.exp(e)
        alpha /= alpha.sum(axis=2, keepdims=True)
        self._cache = (H, F, S, alpha)
        return alpha @ F, alpha

    def backward(self, dctx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """∂J/∂context → (∂J/∂H, ∂J/∂F); fills the parameters' gradients."""
        H, F, S, alpha = self._cache
        dalpha = dctx @ F.transpose(0, 2, 1)                       # (B, T, L)
        de = alpha * (dalpha - (alpha * dalpha).sum(axis=2, keepdims=True))
        self.grads[3][...] = np.einsum("btl,btla->a", de, S)
        dpre = de[..., None] * self.v * (1 - S * S)                # (B, T, L, a)
        dP = dpre.sum(axis=1)                                      # (B, L, a)
        dQ = dpre.sum(axis=2)                                      # (B, T, a)
        a = self.Wf.shape[1]
        self.grads[0][...] = F.reshape(-1, F.shape[2]).T @ dP.reshape(-1, a)
        self.grads[1][...] = H.reshape(-1, H.shape[2]).T @ dQ.reshape(-1, a)
        self.grads[2][...] = dQ.sum(axis=(0, 1))
        dF = alpha.transpose(0, 2, 1) @ dctx + dP @ self.Wf.T
        return dQ @ self.Wq.T, dF
