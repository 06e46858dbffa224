"""A transformer encoder's forward pass (BERT), from first principles on NumPy.

The same forward propagation as the lecture's networks — a^(j+1) = g(Θ^(j) a^(j)) — with three
new ideas, all written out here:

* **Embeddings.** Token t at position p in segment s starts as
  a^(0) = LayerNorm(E_word[t] + E_pos[p] + E_seg[s]).
* **Self-attention.** Each of the h heads projects every token to a query q, key k and value v
  (z = Θ a, one matrix each); token i attends to token j with weight
  softmax_j(q_i · k_j / √d_k) over the unmasked j (padding gets weight exactly 0); the heads'
  weighted sums of v are concatenated and projected back. A residual connection adds the
  input, then LayerNorm.
* **Feed-forward.** Per token, z = Θ_1 a, g = GELU (erf form, as BERT), then Θ_2, residual,
  LayerNorm.

:func:`mean_pool` averages the last layer over the unmasked tokens and :func:`l2_normalize`
scales each row to unit length, as sentence-transformers does for all-MiniLM-L6-v2.

Weights come as a name → array mapping in Hugging Face's BERT names
(``embeddings.word_embeddings.weight``, ``encoder.layer.0.attention.self.query.weight``, …;
an optional ``bert.`` prefix is accepted); :func:`load_safetensors` reads such a mapping from
a ``.safetensors`` file. Computation is float32 and batched; only NumPy is needed (plus
``safetensors`` for the loader).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thetanet.tensorfile import read_tensors

__all__ = [
    "EncoderConfig",
    "TransformerEncoder",
    "erfc",
    "gelu",
    "l2_normalize",
    "layer_norm",
    "load_safetensors",
    "mean_pool",
    "pad_batch",
]

_SQRT_HALF = np.float32(np.sqrt(0.5))
# Abramowitz & Stegun 7.1.26: erfc(u) ≈ t (a1 + t (a2 + … + t a5)) e^(−u²), t = 1/(1 + p u), u ≥ 0,
# absolute error < 1.5e-7 — float32 precision with NumPy alone (NumPy has no erf).
_AS_P = np.float32(0.3275911)
_AS_A = tuple(np.float32(c) for c in
              (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429))
# rows per chunk in gelu: keeps the ~15 elementwise passes inside the CPU's L2 cache
_CHUNK_ELEMENTS = 65536


def _erfc_nonneg(u: np.ndarray) -> np.ndarray:
    """erfc(u) for u ≥ 0 (A&S 7.1.26); overwrites ``u``."""
    t = u * _AS_P
    t += 1
    np.reciprocal(t, out=t)
    p = t * _AS_A[4]
    for c in _AS_A[3::-1]:  # Horner
        p += c
        p *= t
    u *= u
    np.negative(u, out=u)
    np.exp(u, out=u)
    p *= u
    return p


def erfc(x: np.ndarray) -> np.ndarray:
    """The complementary error function erfc(x) = 1 − erf(x), elementwise (abs. error < 2e-7)."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    e = _erfc_nonneg(np.abs(x))
    return np.where(x >= 0, e, 2 - e).astype(x.dtype, copy=False)


def gelu(z: np.ndarray) -> np.ndarray:
    """g(z) = z Φ(z) = ½ z (1 + erf(z/√2)): BERT's exact GELU, in z's float dtype.

    With e = ½ |z| erfc(|z|/√2): g(z) = z − e for z ≥ 0 and −e for z < 0, i.e. max(z, 0) − e,
    so only erfc of a non-negative argument is needed. Computed in row chunks that stay in
    cache (this is a third of the encoder's time otherwise).
    """
    z = np.asarray(z)
    if z.dtype.kind != "f":
        z = z.astype(np.float32)
    flat = z.reshape(-1, z.shape[-1]) if z.ndim > 1 else z.reshape(1, -1)
    out = np.empty_like(flat)
    step = max(1, _CHUNK_ELEMENTS // max(1, flat.shape[1]))
    for i in range(0, flat.shape[0], step):
        x, o = flat[i:i + step], out[i:i + step]
        u = np.abs(x)
        u *= _SQRT_HALF
        e = _erfc_nonneg(u)
        np.abs(x, out=u)
        u *= 0.5
        e *= u
        np.maximum(x, 0, out=o)
        o -= e
    return out.reshape(z.shape)


def layer_norm(a: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """(a − mean) / √(var + ε) · γ + β over the last axis (biased variance, as PyTorch)."""
    mu = a.mean(axis=-1, keepdims=True)
    c = a - mu
    var = np.mean(c * c, axis=-1, keepdims=True)
    c *= 1.0 / np.sqrt(var + np.float32(eps))
    c *= gamma
    c += beta
    return c


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of ``hidden`` (B, T, H) over the tokens where ``mask`` (B, T) is 1.

    A row with no unmasked token gives zeros (sentence-transformers clamps the count at 1e-9).
    """
    m = np.asarray(mask, dtype=hidden.dtype)
    summed = np.einsum("bth,bt->bh", hidden, m)
    count = np.maximum(m.sum(axis=1, keepdims=True), hidden.dtype.type(1e-9))
    return summed / count


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit Euclidean norm (norms below ``eps`` are taken as ``eps``)."""
    norms = np.sqrt(np.einsum("...h,...h->...", x, x))[..., None]
    return x / np.maximum(norms, x.dtype.type(eps))


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Token id lists → ``(ids, mask)`` int64 arrays (B, T_max), right-padded with ``pad_id``."""
    t = max((len(s) for s in sequences), default=0)
    ids = np.full((len(sequences), t), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), t), dtype=np.int64)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return ids, mask


def load_safetensors(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every tensor of a ``.safetensors`` file as a name → NumPy array mapping, validated
    (:func:`thetanet.tensorfile.read_tensors`: float dtypes, offsets, finite values)."""
    return read_tensors(path)


@dataclass(frozen=True)
class EncoderConfig:
    """The hyper-parameters the weights do not tell: heads and the LayerNorm ε."""

    num_heads: int
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> EncoderConfig:
        """Read a Hugging Face ``config.json`` (``num_attention_heads``, ``layer_norm_eps``)."""
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        if doc.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"{path}: only hidden_act 'gelu' is implemented")
        if doc.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: only absolute position embeddings are implemented")
        return cls(num_heads=int(doc["num_attention_heads"]),
                   layer_norm_eps=float(doc.get("layer_norm_eps", 1e-12)))


@dataclass
class _Layer:
    qkv: np.ndarray     # (H, 3H): [Θ_Q | Θ_K | Θ_V]ᵀ, one product for all three
    qkv_b: np.ndarray
    out: np.ndarray     # (H, H)
    out_b: np.ndarray
    ln1: tuple[np.ndarray, np.ndarray]
    ff1: np.ndarray     # (H, I)
    ff1_b: np.ndarray
    ff2: np.ndarray     # (I, H)
    ff2_b: np.ndarray
    ln2: tuple[np.ndarray, np.ndarray]


class TransformerEncoder:
    """A BERT encoder: ``hidden_states(ids, mask)`` and sentence vectors ``encode(ids, mask)``."""

    def __init__(self, weights: Mapping[str, np.ndarray], config: EncoderConfig,
                 dtype: Any = np.float32) -> None:
        self.config = config
        self.dtype = np.dtype(dtype)
        w = {k.removeprefix("bert."): v for k, v in weights.items()}

        def get(name: str) -> np.ndarray:
            if name not in w:
                raise KeyError(f"the weights have no {name!r}")
            return np.ascontiguousarray(np.asarray(w[name], dtype=self.dtype))

        def lin(prefix: str) -> tuple[np.ndarray, np.ndarray]:
            # PyTorch stores Linear as (out, in); keep (in, out) so that z = a @ W + b
            return np.ascontiguousarray(get(prefix + ".weight").T), get(prefix + ".bias")

        def ln(prefix: str) -> tuple[np.ndarray, np.ndarray]:
            return get(prefix + ".weight"), get(prefix + ".bias")

        self.word = get("embeddings.word_embeddings.weight")
        self.pos = get("embeddings.position_embeddings.weight")
        self.seg = get("embeddings.token_type_embeddings.weight")
        self.ln0 = ln("embeddings.LayerNorm")
        self.hidden_size = int(self.word.shape[1])
        if self.hidden_size % config.num_heads:
            raise ValueError(f"hidden size {self.hidden_size} is not divisible by "
                             f"{config.num_heads} heads")
        self.layers: list[_Layer] = []
        while f"encoder.layer.{len(self.layers)}.attention.self.query.weight" in w:
            p = f"encoder.layer.{len(self.layers)}."
            parts = [lin(p + f"attention.self.{n}") for n in ("query", "key", "value")]
            ff1, ff1_b = lin(p + "intermediate.dense")
            ff2, ff2_b = lin(p + "output.dense")
            out, out_b = lin(p + "attention.output.dense")
            self.layers.append(_Layer(
                qkv=np.ascontiguousarray(np.concatenate([m for m, _ in parts], axis=1)),
                qkv_b=np.concatenate([b for _, b in parts]),
                out=out, out_b=out_b, ln1=ln(p + "attention.output.LayerNorm"),
                ff1=ff1, ff1_b=ff1_b, ff2=ff2, ff2_b=ff2_b, ln2=ln(p + "output.LayerNorm")))
        if not self.layers:
            raise KeyError("the weights have no encoder.layer.0.* tensors")

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike[str],
                        dtype: Any = np.float32) -> TransformerEncoder:
        """Load ``model.safetensors`` + ``config.json`` from a Hugging Face model directory."""
        d = Path(model_dir)
        return cls(load_safetensors(d / "model.safetensors"),
                   EncoderConfig.from_json(d / "config.json"), dtype=dtype)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def _attention(self, a: np.ndarray, layer: _Layer, bias: np.ndarray | None) -> np.ndarray:
        b, t, h = a.shape
        nh = self.config.num_heads
        dk = h // nh
        qkv = a.reshape(b * t, h) @ layer.qkv
        qkv += layer.qkv_b
        # (3, B, heads, T, d_k)
        qkv = qkv.reshape(b, t, 3, nh, dk).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = q @ k.transpose(0, 1, 3, 2)  # (B, heads, T, T)
        scores *= self.dtype.type(1.0 / np.sqrt(dk))
        if bias is not None:
            scores += bias
        scores -= scores.max(axis=-1, keepdims=True)  # softmax without overflow
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(b * t, h)
        z = ctx @ layer.out
        z += layer.out_b
        z += a.reshape(b * t, h)  # residual
        return layer_norm(z, *layer.ln1, self.config.layer_norm_eps)

    def hidden_states(self, ids: np.ndarray, mask: np.ndarray | None = None,
                      token_type_ids: np.ndarray | None = None) -> np.ndarray:
        """The last layer's activations a^(L), shape (B, T, H), for token ids (B, T)."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 2:
            raise ValueError(f"ids must be (batch, length), got shape {ids.shape}")
        b, t = ids.shape
        if t > self.pos.shape[0]:
            raise ValueError(f"sequence length {t} exceeds the {self.pos.shape[0]} positions")
        seg = np.zeros_like(ids) if token_type_ids is None else np.asarray(token_type_ids)
        a = self.word[ids] + self.pos[:t] + self.seg[seg]
        a = layer_norm(a, *self.ln0, self.config.layer_norm_eps)
        bias = None
        if mask is not None:
            m = np.asarray(mask)
            if m.shape != ids.shape:
                raise ValueError(f"mask shape {m.shape} differs from ids shape {ids.shape}")
            if not m.all():
                # masked keys: add the most negative float, so exp gives exactly 0 (as HF)
                bias = np.where(m[:, None, None, :] != 0, 0.0,
                                np.finfo(self.dtype).min).astype(self.dtype)
        h = self.hidden_size
        for layer in self.layers:
            a = self._attention(a.reshape(b, t, h), layer, bias)  # (B·T, H)
            z = a @ layer.ff1
            z += layer.ff1_b
            z = gelu(z) @ layer.ff2
            z += layer.ff2_b
            z += a
            a = layer_norm(z, *layer.ln2, self.config.layer_norm_eps)
        return a.reshape(b, t, h)

    def encode(self, ids: np.ndarray, mask: np.ndarray | None = None,
               token_type_ids: np.ndarray | None = None, normalize: bool = True) -> np.ndarray:
        """Sentence vectors (B, H): masked mean of the last layer, optionally L2-normalised."""
        ids = np.asarray(ids)
        m = np.ones(ids.shape, dtype=np.int64) if mask is None else np.asarray(mask)
        if ids.ndim == 2 and ids.shape[1] == 0:  # only empty sequences: zero vectors
            return np.zeros((ids.shape[0], self.hidden_size), dtype=self.dtype)
        pooled = mean_pool(self.hidden_states(ids, m, token_type_ids), m)
        return l2_normalize(pooled) if normalize else pooled

    def iter_hidden(self, sequences: Sequence[Sequence[int]], batch_tokens: int = 4096,
                    pad_id: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(rows, hidden, mask)`` per batch of token id lists, batched by length.

        Sequences are sorted by length and grouped with at most ~``batch_tokens`` tokens per
        padded batch, so that a batch carries almost no padding (the short noun-compound texts
        are 4–8 tokens: batches of equal length need no mask at all). ``rows`` are the
        positions in ``sequences``; empty sequences are skipped.
        """
        lengths = np.fromiter((len(s) for s in sequences), np.int64, len(sequences))
        order = np.argsort(lengths, kind="stable")
        order = order[lengths[order] > 0]
        i = 0
        while i < len(order):
            # lengths ascend: the batch's padded length is its last sequence's length
            j = i + 1
            while j < len(order) and (j - i + 1) * lengths[order[j]] <= batch_tokens:
                j += 1
            rows = order[i:j]
            ids, mask = pad_batch([sequences[k] for k in rows], pad_id)
            yield rows, self.hidden_states(ids, mask), mask
            i = j

    def encode_sequences(self, sequences: Sequence[Sequence[int]], batch_tokens: int = 4096,
                         normalize: bool = True, pad_id: int = 0) -> np.ndarray:
        """Sentence vectors (len(sequences), H) in input order; an empty sequence gives zeros."""
        out = np.zeros((len(sequences), self.hidden_size), dtype=self.dtype)
        for rows, hidden, mask in self.iter_hidden(sequences, batch_tokens, pad_id):
            pooled = mean_pool(hidden, mask)
            out[rows] = l2_normalize(pooled) if normalize else pooled
        return out
