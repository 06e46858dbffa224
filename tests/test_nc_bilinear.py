"""pair-bilinear: whitened kernel-PCA coordinates of modifier and head, their outer product."""

import json

import numpy as np
import pytest

from thetanet.compounds.features import BilinearPairsExtractor, build_features
from thetanet.compounds.features.neighbours import WordSpace
from thetanet.compounds.system import NCClassifier, NCSettings
from thetanet.data.tratz import Compounds, labels_for, load_split

MODS = ["olive", "morning", "bus", "police", "apple", "steel", "family", "river", "tax",
        "school", "paper", "winter"]
HEADS = ["oil", "meeting", "driver", "officer", "juice", "bridge", "car", "bank", "law",
         "teacher", "cup", "coat"]


def _reference(space, train_words, queries, d):
    """Kernel PCA by hand in float64: centre K over the training words, eigendecompose,
    project the centred kernel rows of the queries, scale to unit variance on train."""
    k = np.array(space.cosines(train_words, space.table(train_words)), np.float64)
    n = len(train_words)
    h = np.eye(n) - 1.0 / n
    lam, vec = np.linalg.eigh(h @ k @ h)
    lam, vec = lam[::-1][:d], vec[:, ::-1][:, :d]
    kq = np.array(space.cosines(queries, space.table(train_words)), np.float64)
    kq_c = (kq - kq.mean(1, keepdims=True)) - k.mean(0)[None, :] + k.mean()
    z = kq_c @ vec / np.sqrt(lam) / np.sqrt(lam / n)
    return z, (k, h, vec, lam)


@pytest.mark.parametrize("space", ["minilm+gloss", "minilm+gloss+wordnet"])
def test_block_is_the_outer_product_of_kernel_pca_coordinates(tmp_path, space):
    d = 3
    e = BilinearPairsExtractor(cache_dir=tmp_path, d=d, space=space).fit(MODS, HEADS)
    qm, qh = ["butter", "evening", "olive"], ["fat", "lecture", "oil"]
    ref_space = WordSpace(space, cache_dir=tmp_path).fit(MODS + HEADS + qm + qh)
    zm, (k, h, vec, lam) = _reference(ref_space, sorted(MODS), qm, d)
    zh, _ = _reference(ref_space, sorted(HEADS), qh, d)
    # eigenvectors have a free sign: compare up to it, per coordinate
    got_m, got_h = e.coordinates(0, qm), e.coordinates(1, qh)
    for got, want in ((got_m, zm), (got_h, zh)):
        signs = np.sign(np.sum(got * want, axis=0))
        np.testing.assert_allclose(got, want * signs, rtol=1e-4, atol=1e-4)
    block = e.transform(qm, qh)
    assert block.shape == (3, d * d) and block.dtype == np.float32 and e.dim == d * d
    np.testing.assert_allclose(block, np.einsum("ni,nj->nij", got_m, got_h).reshape(3, -1) / d,
                               rtol=1e-5, atol=1e-6)
    # on the training modifiers each coordinate has mean 0 and variance 1
    z_train = e.coordinates(0, sorted(MODS))
    np.testing.assert_allclose(z_train.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(z_train.var(0), 1, rtol=1e-6)


def test_state_round_trip_and_bad_states(tmp_path):
    e = BilinearPairsExtractor(cache_dir=tmp_path, d=2).fit(MODS, HEADS)
    state = json.loads(json.dumps(e.get_state()))
    back = BilinearPairsExtractor(cache_dir=tmp_path, d=2)
    back.set_state(state)
    np.testing.assert_array_equal(back.transform(["butter"], ["fat"]),
                                  e.transform(["butter"], ["fat"]))
    bad = json.loads(json.dumps(state))
    bad["heads"]["projection"][0] = [1.0]
    with pytest.raises(ValueError, match="projection"):
        BilinearPairsExtractor(d=2).set_state(bad)
    bad = json.loads(json.dumps(state))
    bad["modifiers"]["mean"][0] = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        BilinearPairsExtractor(d=2).set_state(bad)
    with pytest.raises(ValueError, match="words"):
        BilinearPairsExtractor(d=2).set_state({"modifiers": {"words": ["a", "a", "b"]}})
    with pytest.raises(RuntimeError, match="not fitted"):
        BilinearPairsExtractor(d=2).transform(["a"], ["b"])


@pytest.mark.parametrize("options, message", [
    ({"d": 0}, "d must be"), ({"d": 2.5}, "d must be"), ({"d": 65}, "d must be"),
    ({"space": "glove"}, "space must be"), ({"dd": 3}, "unknown option"),
])
def test_bad_options_are_clear_value_errors(options, message):
    with pytest.raises(ValueError, match=message):
        BilinearPairsExtractor(**options)


def test_too_few_training_words_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="needs more than 12"):
        BilinearPairsExtractor(cache_dir=tmp_path).fit(MODS[:5], HEADS[:5])


def test_in_the_system_save_load_predicts_the_same(data_root, tmp_path):
    train, val = load_split("coarse_random", data_root)

    def cut(c, a, b):
        return Compounds(c.modifiers[a:b], c.heads[a:b], (c.labels or [])[a:b])

    train, val, other = cut(train, 0, 300), cut(val, 0, 80), cut(train, 300, 360)
    settings = NCSettings(features=["minilm-static", "pair-bilinear:d=4,weight=2"], hidden=[],
                          max_epochs=3, patience=1, seeds=[0])
    labels = list(labels_for("coarse_random"))
    clf = NCClassifier(settings, labels).fit(train, val, cache_dir=tmp_path)
    assert clf.input_dim == 2 * 384 + 16
    assert any(isinstance(x, BilinearPairsExtractor) for x in clf.features.extractors)
    # its word extractors are frozen while predicting (asking never grows their caches)
    assert set(map(id, clf.features.extractors[1].word_extractors)) <= set(
        map(id, clf._extractors()))
    clf.save(tmp_path / "m")
    back = NCClassifier.load(tmp_path / "m", cache_dir=tmp_path)
    np.testing.assert_array_equal(back.predict_proba(other), clf.predict_proba(other))
    # a damaged (re-signed) state is refused when loading, naming the block
    from thetanet.files import ModelFileError
    from thetanet.saving import doc_digest

    path = tmp_path / "m" / "nc.json"
    doc = json.loads(path.read_text())
    item = next(f for f in doc["features"]["extractors"] if f["name"] == "pair-bilinear")
    item["state"]["heads"]["projection"] = item["state"]["heads"]["projection"][:-1]
    doc.pop("sha256")
    doc["sha256"] = doc_digest(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match="pair-bilinear"):
        NCClassifier.load(tmp_path / "m", cache_dir=tmp_path)
    # the block of a fitted feature set equals the extractor's own transform, ×2
    fs = build_features(["pair-bilinear:d=4,weight=2"], train, cache_dir=tmp_path)
    got = fs.transform(other.modifiers, other.heads)
    got = got.toarray() if hasattr(got, "toarray") else np.asarray(got)
    np.testing.assert_allclose(got, 2 * fs.extractors[0].transform(other.modifiers, other.heads),
                               rtol=1e-6)
