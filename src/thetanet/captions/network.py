r"""The captioner: a CNN encoder, an LSTM decoder and (optionally) attention — Figure 3.

Forward, for images X (B, H, W) and teacher-forcing inputs w (B, T) = ``<start> w_1 … w_k``:

1. **Encoder**: X with two coordinate channels (row and column position in [−1, 1], so the
   features know *where* they are) → [Conv2D 3×3 same + ReLU → MaxPool 2] × len(filters) →
   a (g_h, g_w, d) feature map, read as L = g_h·g_w feature vectors f_l ∈ ℝ^d.
2. **Initial state**: h_0 = tanh(f̄ W_0 + b_0) from the mean feature f̄ = (1/L) Σ_l f_l, c_0 = 0.
3. **Decoder**: x_t = E[w_t], H = LSTM(x_1 … x_T) (teacher forcing: the true previous word).
4. **Attention** (``attention=True``): ctx_t = Σ_l α_tl f_l with α_t from h_t
   (:class:`~thetanet.captions.decoder.AdditiveAttention`); without attention ctx_t is the
   whole flattened feature map, the same at every step ("Show and Tell").
5. **Output** (a deep output layer, as in "Show, Attend and Tell"): r_t = ReLU([h_t, ctx_t] W_r +
   b_r) with ``hidden`` units (``hidden=0``: r_t = [h_t, ctx_t] and no W_r), then
   P(w_{t+1} | w_≤t, X) = softmax(r_t W_o + b_o) over the vocabulary.

J = −(1/N) Σ_{real steps} log P(target), N the number of real (non-padding) target steps; the
fused δ at the output is (P − y)/N on real steps and 0 on padding. Backward runs the same path
in reverse: output → attention → LSTM (BPTT) → embedding, initial state → encoder (the
engine's Conv2D / MaxPool2D ``backward``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from thetanet import initializers as _init
from thetanet.captions.decoder import AdditiveAttention, Embedding, LSTMDecoder
from thetanet.data import scenes as _scenes
from thetanet.layers import Conv2D, MaxPool2D

__all__ = ["CaptionConfig", "CaptionNet", "with_coordinates"]


@dataclass
class CaptionConfig:
    """The captioner's architecture (saved with the model)."""

    canvas: int = 48
    filters: tuple[int, ...] = (8, 16, 32)
    embed: int = 16
    units: int = 64
    attention_units: int = 32
    attention: bool = True
    hidden: int = 64
    vocab: int = len(_scenes.VOCAB)
    max_len: int = _scenes.MAX_WORDS + 1
    dtype: str = "float32"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.filters = tuple(int(f) for f in self.filters)
        sizes = (self.canvas, self.embed, self.units, self.attention_units, self.vocab,
                 self.max_len, *self.filters)
        if isinstance(self.hidden, bool) or int(self.hidden) < 0:
            raise ValueError(f"hidden must be >= 0 (0: no hidden output layer): {self}")
        if not self.filters or any(isinstance(s, bool) or int(s) < 1 for s in sizes):
            raise ValueError(f"caption config sizes must be positive integers: {self}")
        if self.canvas % 2 ** len(self.filters):
            raise ValueError(f"canvas {self.canvas} must be divisible by 2^{len(self.filters)}"
                             " (one 2×2 pooling per conv layer)")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")

    @property
    def grid(self) -> tuple[int, int]:
        side = self.canvas // 2 ** len(self.filters)
        return side, side

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["filters"] = list(self.filters)
        return d


def with_coordinates(images: np.ndarray) -> np.ndarray:
    """(n, H, W) images → (n, H, W, 3): the image, its row and its column position in [−1, 1]."""
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must be (n, H, W), got shape {images.shape}")
    n, h, w = images.shape
    out = np.empty((n, h, w, 3), images.dtype)
    out[..., 0] = images
    out[..., 1] = np.linspace(-1, 1, h, dtype=images.dtype)[:, None]
    out[..., 2] = np.linspace(-1, 1, w, dtype=images.dtype)[None, :]
    return out


class CaptionNet:
    """The network of the module doc; ``params`` / ``grads`` list every array, in order."""

    def __init__(self, config: CaptionConfig, seed: int = 0) -> None:
        self.config = cfg = config
        dt = np.dtype(cfg.dtype)
        rng = np.random.default_rng(seed)
        self.encoder: list[Any] = []
        shape: tuple[int, ...] = (cfg.canvas, cfg.canvas, 3)
        for f in cfg.filters:
            for layer in (Conv2D(f, 3, padding="same", activation="relu",
                                 kernel_initializer="he_uniform"), MaxPool2D(2)):
                shape = layer.build(shape, dtype=dt, rng=rng)
                self.encoder.append(layer)
        self.encoder[0].needs_input_grad = False  # nothing below the image learns
        d, u = cfg.filters[-1], cfg.units
        L = cfg.grid[0] * cfg.grid[1]
        self.W0 = _init.glorot_uniform((d, u), rng, dt)
        self.b0 = np.zeros(u, dt)
        self.embedding = Embedding(cfg.vocab, cfg.embed, rng, dt)
        self.lstm = LSTMDecoder(cfg.embed, u, rng, dt)
        self.attention = (AdditiveAttention(d, u, cfg.attention_units, rng, dt)
                          if cfg.attention else None)
        ctx = d if cfg.attention else L * d
        width = cfg.hidden or cfg.vocab
        self.Wr = _init.glorot_uniform((u + ctx, width), rng, dt)
        self.br = np.zeros(width, dt)
        self._own = [self.W0, self.b0, self.Wr, self.br]
        if cfg.hidden:
            self.Wo = _init.glorot_uniform((cfg.hidden, cfg.vocab), rng, dt)
            self.bo = np.zeros(cfg.vocab, dt)
            self._own += [self.Wo, self.bo]
        self._own_grads = [np.zeros_like(p) for p in self._own]
        self._cache: Any = None

    # -- parameters ----------------------------------------------------------------------------
    def _parts(self) -> list[Any]:
        parts = [*self.encoder, self.embedding, self.lstm]
        return parts + ([self.attention] if self.attention is not None else [])

    @property
    def params(self) -> list[np.ndarray]:
        return [p for part in self._parts() for p in part.params] + self._own

    @property
    def grads(self) -> list[np.ndarray]:
        return [g for part in self._parts() for g in part.grads] + self._own_grads

    def set_params(self, arrays: list[np.ndarray]) -> None:
        """Copy ``arrays`` (same order, shapes as ``params``) into the parameters."""
        params = self.params
        if len(arrays) != len(params):
            raise ValueError(f"expected {len(params)} arrays, got {len(arrays)}")
        for p, a in zip(params, arrays):
            if p.shape != a.shape:
                raise ValueError(f"parameter shape {p.shape} does not match {a.shape}")
            p[...] = a

    # -- forward -------------------------------------------------------------------------------
    def encode(self, images: np.ndarray, training: bool = False) -> np.ndarray:
        """Features F (B, L, d) of images (B, H, W)."""
        a = with_coordinates(np.asarray(images, self.config.dtype))
        for layer in self.encoder:
            a = layer.forward(a, training)
        return a.reshape(a.shape[0], -1, a.shape[-1]).copy()  # the layers reuse their buffers

    def decode(self, F: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(P (B, T, V), α (B, T, L) or None) given features and the input tokens (B, T)."""
        tokens = np.asarray(tokens, np.int64)
        m = F.mean(axis=1)
        h0 = np.tanh(m @ self.W0 + self.b0)
        H = self.lstm.forward(self.embedding.forward(tokens), h0, np.zeros_like(h0))
        u = self.config.units
        alpha = ctx = None
        if self.attention is not None:
            ctx, alpha = self.attention.forward(H, F)
            z = np.concatenate([H, ctx], axis=2) @ self.Wr + self.br
        else:
            z = H @ self.Wr[:u] + (F.reshape(F.shape[0], -1) @ self.Wr[u:] + self.br)[:, None]
        r = None
        if self.config.hidden:
            r = np.maximum(z, 0)
            z = r @ self.Wo + self.bo
        z -= z.max(axis=2, keepdims=True)
        P = np.exp(z)
        P /= P.sum(axis=2, keepdims=True)
        self._cache = (F, m, h0, H, ctx, r, P)
        return P, alpha

    def forward(self, images: np.ndarray, tokens: np.ndarray, training: bool = False
                ) -> tuple[np.ndarray, np.ndarray | None]:
        return self.decode(self.encode(images, training), tokens)

    # -- loss and backward -----------------------------------------------------------------------
    @staticmethod
    def loss(P: np.ndarray, targets: np.ndarray) -> float:
        """J: the mean −log P(target) over the real (non-padding) target steps."""
        real = targets != _scenes.PAD
        picked = np.take_along_axis(P, targets[..., None], axis=2)[..., 0]
        return float(-np.log(np.maximum(picked[real], 1e-30)).sum() / max(real.sum(), 1))

    def backward(self, targets: np.ndarray) -> None:
        """Fill ``grads`` with ∂J/∂θ for the last ``forward`` (run with ``training=True``)."""
        F, m, h0, H, ctx, r, P = self._cache
        real = targets != _scenes.PAD
        dz = P.copy()
        np.put_along_axis(dz, targets[..., None], np.take_along_axis(P, targets[..., None], 2)
                          - 1, axis=2)
        dz *= (real / max(real.sum(), 1))[..., None]  # δ = (P − y)/N, 0 on padding
        B, T, V = dz.shape
        u = self.config.units
        gW0, gb0, gWr, gbr = self._own_grads[:4]
        if r is not None:  # the deep output layer: δ through W_o and the ReLU
            gWo, gbo = self._own_grads[4:]
            gWo[...] = r.reshape(B * T, -1).T @ dz.reshape(B * T, V)
            gbo[...] = dz.sum(axis=(0, 1))
            dz = (dz @ self.Wo.T) * (r > 0)
        width = dz.shape[2]
        gbr[...] = dz.sum(axis=(0, 1))
        if self.attention is not None:
            hc = np.concatenate([H, ctx], axis=2).reshape(B * T, -1)
            gWr[...] = hc.T @ dz.reshape(B * T, width)
            dhc = dz @ self.Wr.T
            dH_att, dF = self.attention.backward(dhc[..., u:])
            dH = dhc[..., :u] + dH_att
        else:
            flat = F.reshape(B, -1)
            gWr[:u] = H.reshape(B * T, u).T @ dz.reshape(B * T, width)
            dsum = dz.sum(axis=1)
            gWr[u:] = flat.T @ dsum
            dH = dz @ self.Wr[:u].T
            dF = (dsum @ self.Wr[u:].T).reshape(F.shape)
        dx, dh0, _ = self.lstm.backward(dH)
        self.embedding.backward(dx)
        dz0 = dh0 * (1 - h0 * h0)
        gW0[...] = m.T @ dz0
        gb0[...] = dz0.sum(axis=0)
        dF = dF + (dz0 @ self.W0.T)[:, None] / F.shape[1]
        g = dF.reshape(B, *self.config.grid, -1)
        for layer in reversed(self.encoder):
            g = layer.backward(g)
            if g is None:
                break

    # -- decoding ------------------------------------------------------------------------------
    def step_function(self, F: np.ndarray) -> Any:
        """``step(rows, prefixes) -> log P(next | prefix)`` over precomputed features F, for
        :mod:`thetanet.captions.decode` (the decoder re-runs on each prefix)."""

        def step(rows: np.ndarray, prefixes: np.ndarray) -> np.ndarray:
            P, _ = self.decode(F[rows], prefixes)
            return np.log(np.maximum(P[:, -1], 1e-30))

        return step
