"""The neighbours block (compounds/features/neighbours.py) and its place in the NC system:
against a brute-force loop, chunked or not; its options; fitted on train, refitted on
train + val (also beside the selection); saved and loaded so the model predicts the same."""

import json
import math

import numpy as np
import pytest

import thetanet.compounds.features.neighbours as nb
from thetanet.compounds.features.neighbours import (
    NeighbourBlock,
    NeighbourOptions,
    WordSpace,
    WordTable,
)
from thetanet.compounds.features.wordnet import WordNetExtractor
from thetanet.compounds.system import NCClassifier, NCSettings
from thetanet.data.tratz import Compounds, labels_for, load_split
from thetanet.files import ModelFileError

N_LABELS = 4


class FakeSpace:
    """Fixed random vectors per word: some cosines negative (the max(·, 0) matters), or with
    ``positive`` none (no similarity ties at 0, so the k nearest are one set)."""

    def __init__(self, words, rng, dim=5, positive=False):
        v = rng.normal(size=(len(words), dim))
        self.vec = dict(zip(words, np.abs(v) if positive else v + 0.3))
        self.extractors = []

    def fit(self, words):
        return self

    def vectors(self, words):
        v = np.array([self.vec[w] for w in words], np.float32).reshape(len(words), -1)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def table(self, words):
        return WordTable(self.vectors(words))

    def cosines(self, words, table):
        return self.vectors(words) @ table.dense.T


def _problem(rng, n_train=40, n_query=25):
    words = [f"w{i}" for i in range(14)]
    grid = [(m, h) for m in words[:10] for h in words[:10] if m != h]
    pick = rng.choice(len(grid), n_train, replace=False)  # distinct pairs: no tied s_j
    train = [grid[i] for i in pick]
    queries = [(words[rng.integers(14)], words[rng.integers(14)]) for _ in range(n_query)]
    y = rng.integers(N_LABELS, size=n_train)
    return words, train, queries, y


def _block(words, train, y, rng, positive=True, **options):
    block = NeighbourBlock(NeighbourOptions(**options), N_LABELS, cache_dir=False)
    block.space = FakeSpace(words, rng, positive=positive)
    return block.fit([m for m, _ in train], [h for _, h in train], y)


def _reference(block, train, y, rows, training_rows):
    """The module's formula, one row and one neighbour at a time (float64)."""
    o = block.options
    vec = {w: block.space.vectors([w])[0].astype(np.float64) for w in block.space.vec}
    out = np.zeros((len(rows), N_LABELS))
    for i, (m, h) in enumerate(rows):
        cands = []
        for j, (tm, th) in enumerate(train):
            if training_rows and (j == i if o.exclude == "self" else (tm == m or th == h)):
                continue
            s = max(vec[m] @ vec[tm], 0.0) * max(vec[h] @ vec[th], 0.0)
            cands.append((s, y[j]))
        top = sorted(cands, key=lambda c: -c[0])[:o.k]
        if not top:
            continue
        z = sum(math.exp((s - top[0][0]) / o.temperature) for s, _ in top)
        for s, r in top:
            out[i, r] += o.weight * math.exp((s - top[0][0]) / o.temperature) / z
    return out


@pytest.mark.parametrize("exclude", ["shared-word", "self"])
@pytest.mark.parametrize("k", [3, 12, 500])
def test_block_is_the_brute_force_histogram(rng, exclude, k):
    words, train, queries, y = _problem(rng)
    # k < N: no zero similarities, so no ties at the k-th; k ≥ N takes every neighbour
    block = _block(words, train, y, rng, positive=k < len(train), k=k, temperature=0.1,
                   weight=2.5, exclude=exclude)
    for rows, training in ((train, True), (queries, False)):
        got = block.transform([m for m, _ in rows], [h for _, h in rows], training_rows=training)
        want = _reference(block, train, y, rows, training)
        assert got.dtype == np.float32 and got.shape == (len(rows), N_LABELS)
        np.testing.assert_allclose(got, want, atol=2e-5)
    # a training row's own pair is its nearest neighbour unless excluded
    plain = block.transform([m for m, _ in train], [h for _, h in train])
    assert not np.allclose(plain, block.transform([m for m, _ in train],
                                                  [h for _, h in train], training_rows=True))


def test_chunking_gives_the_same_block(rng, monkeypatch):
    words, train, queries, y = _problem(rng, n_query=60)
    for exclude in ("shared-word", "self"):
        block = _block(words, train, y, rng, k=7, exclude=exclude)
        args = ([m for m, _ in train], [h for _, h in train])
        whole = block.transform(*args, training_rows=True), block.transform(
            [m for m, _ in queries], [h for _, h in queries])
        monkeypatch.setattr(nb, "MAX_CELLS", 3 * len(train) + 1)  # chunks of 3 rows
        monkeypatch.setattr(nb, "MAX_WORD_CELLS", 50)  # groups of 5 rows
        chunked = block.transform(*args, training_rows=True), block.transform(
            [m for m, _ in queries], [h for _, h in queries])
        monkeypatch.undo()
        for a, b in zip(whole, chunked):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_every_row_excluded_gives_zeros(rng):
    words = ["a", "b", "c"]
    train = [("a", "b"), ("a", "c")]  # every neighbour shares the modifier
    block = _block(words, train, np.array([0, 1]), rng, k=5)
    got = block.transform(["a", "a"], ["b", "c"], training_rows=True)
    np.testing.assert_array_equal(got, np.zeros((2, N_LABELS), np.float32))
    assert np.allclose(block.transform(["b"], ["c"]).sum(), 5.0)  # Σ_r b_r = weight


def test_training_rows_must_be_the_fitted_compounds(rng):
    words, train, queries, y = _problem(rng)
    block = _block(words, train, y, rng)
    with pytest.raises(ValueError, match="not the compounds"):
        block.transform([m for m, _ in queries], [h for _, h in queries], training_rows=True)
    with pytest.raises(ValueError, match="labels must be in"):
        _block(words, train, y + N_LABELS, rng)


@pytest.mark.parametrize("spec, message", [
    ("k=0", "k must"), ("k=1.5", "k must"), ("k=x", "k must be a number"),
    ("temperature=0", "temperature must"), ("temperature=NaN", "temperature must"),
    ("weight=1e9", "weight must"), ("exclude=none", "exclude must"),
    ("space=glove", "space must"), ("neighbours=3", "bad option"), ("k", "bad option"),
    ("k=3,k=4", "given twice"),
])
def test_bad_options_are_clear_value_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        NeighbourOptions.parse(spec)
    with pytest.raises(ValueError, match=message):
        NCClassifier(NCSettings(neighbours=spec), ["a", "b"])


def test_options_parse():
    assert NeighbourOptions.parse("") == NeighbourOptions()
    o = NeighbourOptions.parse(" k=7, temperature=1, weight=-2,exclude=self,space=minilm ")
    assert o == NeighbourOptions(k=7, temperature=1.0, weight=-2.0, exclude="self",
                                 space="minilm")
    assert NCSettings(neighbours="k=7").neighbour_options().k == 7
    assert NCSettings().neighbour_options() is None


# -- in the system ----------------------------------------------------------------------

LABELS = list(labels_for("coarse_random"))


@pytest.fixture(scope="module")
def small(data_root):
    train, val = load_split("coarse_random", data_root)

    def cut(c, a, b):
        return Compounds(c.modifiers[a:b], c.heads[a:b], (c.labels or [])[a:b])

    return cut(train, 0, 400), cut(val, 0, 120), cut(train, 400, 500)


def _settings(**kw):
    base = {"features": ["words", "minilm-static"], "hidden": [], "max_epochs": 4,
            "patience": 1, "seeds": [0, 1], "neighbours": "k=10,space=minilm,exclude=self"}
    return NCSettings(**{**base, **kw})


def test_refit_uses_train_and_val_neighbours(small, tmp_path):
    train, val, other = small
    a = NCClassifier(_settings(), LABELS).select_and_refit(train, val, cache_dir=tmp_path)
    b = NCClassifier(_settings(), LABELS).fit(train, val, cache_dir=tmp_path)
    assert b.neighbours is not None and len(b.neighbours.get_state()["labels"]) == len(train)
    b.refit(train, val, cache_dir=tmp_path)
    state = a.neighbours.get_state()
    assert state == b.neighbours.get_state()
    assert len(state["labels"]) == len(train) + len(val)
    assert set(state["modifier_words"]) == set(train.modifiers) | set(val.modifiers)
    assert a.input_dim == a.features.dim + len(LABELS) == a.members[0].input_dim
    np.testing.assert_array_equal(a.predict_proba(other), b.predict_proba(other))


def test_save_load_predicts_the_same(small, tmp_path):
    train, val, other = small
    clf = NCClassifier(_settings(seeds=[0]), LABELS).fit(train, val, cache_dir=tmp_path)
    clf.save(tmp_path / "m")
    doc = json.loads((tmp_path / "m" / "nc.json").read_text())
    assert doc["settings"]["neighbours"] == "k=10,space=minilm,exclude=self"
    assert len(doc["neighbours"]["labels"]) == len(train)
    back = NCClassifier.load(tmp_path / "m", cache_dir=tmp_path)
    np.testing.assert_array_equal(back.predict_proba(other), clf.predict_proba(other))
    np.testing.assert_array_equal(back.predict_proba(val), clf.predict_proba(val))
    # without the block, nc.json does not mention it (older thetanet reads it)
    plain = NCClassifier(_settings(seeds=[0], neighbours=None), LABELS).fit(
        train, val, cache_dir=tmp_path)
    plain.save(tmp_path / "p")
    doc = json.loads((tmp_path / "p" / "nc.json").read_text())
    assert "neighbours" not in doc and "neighbours" not in doc["settings"]
    assert NCClassifier.load(tmp_path / "p").neighbours is None


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("neighbours"), "disagree"),
    (lambda d: d["neighbours"].update(labels=[99] * len(d["neighbours"]["labels"])),
     "'labels' must be"),
    (lambda d: d["neighbours"].update(heads=d["neighbours"]["heads"][:-1]), "one modifier"),
    (lambda d: d.update(neighbours=[1]), "'neighbours' must be an object"),
    (lambda d: d["settings"].update(neighbours="k=-1"), "k must"),
    (lambda d: d["settings"].update(neighbours="k=10,space=minilm,exclude=self; k=5"),
     "must hold 2 blocks"),
])
def test_a_damaged_block_is_refused(small, tmp_path, edit, message):
    train, val, _ = small
    clf = NCClassifier(_settings(seeds=[0], max_epochs=1), LABELS).fit(
        train, val, cache_dir=tmp_path)
    clf.save(tmp_path / "m")
    path = tmp_path / "m" / "nc.json"
    doc = json.loads(path.read_text())
    edit(doc)
    from thetanet.saving import doc_digest
    doc.pop("sha256")
    doc["sha256"] = doc_digest(doc)  # re-signed: the content checks must catch it
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match=message):
        NCClassifier.load(tmp_path / "m", cache_dir=tmp_path)


def test_wordnet_space_is_the_mean_of_two_cosines(tmp_path):
    """minilm+gloss+wordnet: (cos in minilm+gloss + cos of the rank-weighted WordNet
    features) / 2, against a float64 loop over the extractors' own rows; a word's WordNet
    norm counts all its features, also those no training word has."""
    both = WordSpace("minilm+gloss+wordnet", cache_dir=tmp_path)
    dense = WordSpace("minilm+gloss", cache_dir=tmp_path)
    train_words = ["oil", "olive", "morning", "meeting", "driver", "bus"]
    queries = ["butter", "evening", "taxi", "oil", "qzxv"]  # qzxv: unknown to WordNet
    table = both.fit(train_words).table(train_words)
    got = both.cosines(queries, table)
    wn = WordNetExtractor(cache_dir=False)
    feats = wn.feature_values(wn.rows(train_words + queries))
    dv = {w: dense.vectors([w])[0].astype(np.float64) for w in train_words + queries}
    for i, q in enumerate(queries):
        for j, t in enumerate(train_words):
            fq, ft = feats[q], feats[t]
            dot = sum(v * ft.get(k, 0.0) for k, v in fq.items())
            norms = math.sqrt(sum(v * v for v in fq.values())) * math.sqrt(
                sum(v * v for v in ft.values()))
            want = (dv[q] @ dv[t] + (dot / norms if norms else 0.0)) / 2
            assert abs(got[i, j] - want) < 1e-5, (q, t)
    assert got[queries.index("oil"), train_words.index("oil")] == pytest.approx(1.0, abs=1e-5)
    # closer in WordNet than in the dense part alone: taxi and bus are both public transport
    assert got[2, 5] > dense.cosines(["taxi"], dense.table(["bus"]))[0, 0] / 2


def test_wordnet_space_saves_and_loads(small, tmp_path):
    train, val, other = small
    spec = "k=10,space=minilm+gloss+wordnet,exclude=shared-word"
    settings = _settings(seeds=[0], neighbours=spec,
                         features=["wordnet:weight=2", "minilm-static"])
    clf = NCClassifier(settings, LABELS).fit(train, val, cache_dir=tmp_path)
    shared = [e for e in clf.neighbours.extractors if isinstance(e, WordNetExtractor)]
    assert shared and shared[0] is clf.features.extractors[0]  # one WordNet extractor
    clf.save(tmp_path / "m")
    back = NCClassifier.load(tmp_path / "m", cache_dir=tmp_path)
    np.testing.assert_array_equal(back.predict_proba(other), clf.predict_proba(other))
    plain = NCClassifier(_settings(seeds=[0], neighbours=spec.replace("+wordnet", ""),
                                   features=settings.features), LABELS)
    plain.fit(train, val, cache_dir=tmp_path)
    # the WordNet half changes the block
    assert not np.array_equal(plain.neighbours.transform(other.modifiers, other.heads),
                              clf.neighbours.transform(other.modifiers, other.heads))


def test_two_blocks_side_by_side_save_and_load(small, tmp_path):
    """``"spec; spec"``: each block as it would be alone, their columns in order; saved and
    loaded, the same predictions; one block keeps the single-block state format."""
    train, val, other = small
    one, two = "k=10,space=minilm,exclude=self", "k=5,weight=2,space=minilm+gloss,exclude=self"
    clf = NCClassifier(_settings(seeds=[0], neighbours=f"{one}; {two}"), LABELS)
    clf.fit(train, val, cache_dir=tmp_path)
    assert clf.input_dim == clf.features.dim + 2 * len(LABELS)
    for spec, cols in ((one, slice(0, len(LABELS))), (two, slice(len(LABELS), None))):
        alone = NCClassifier(_settings(seeds=[0], neighbours=spec), LABELS)
        alone.fit(train, val, cache_dir=tmp_path)
        np.testing.assert_array_equal(
            clf.neighbours.transform(other.modifiers, other.heads)[:, cols],
            alone.neighbours.transform(other.modifiers, other.heads))
        assert "blocks" not in alone.neighbours.get_state()
    assert len(clf.neighbours.get_state()["blocks"]) == 2
    clf.save(tmp_path / "m")
    back = NCClassifier.load(tmp_path / "m", cache_dir=tmp_path)
    np.testing.assert_array_equal(back.predict_proba(other), clf.predict_proba(other))


@pytest.mark.parametrize("spec, message", [
    ("k=3;", "empty block"), (";k=3", "empty block"), ("k=3; k=x", "must be a number"),
    (";".join(["k=3"] * 9), "at most 8 blocks"),
])
def test_bad_block_lists_are_clear_value_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        NCSettings(neighbours=spec).validate()


def test_one_block_options_and_several():
    assert [o.k for o in NCSettings(neighbours="k=3; k=4").neighbour_blocks()] == [3, 4]
    assert NCSettings().neighbour_blocks() == []
    with pytest.raises(ValueError, match="2 blocks, not one"):
        NCSettings(neighbours="k=3; k=4").neighbour_options()
