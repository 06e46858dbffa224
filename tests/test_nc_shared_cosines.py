"""Cosines shared across blocks (compounds/features/cosines.py) and the grouped transform:
the fast paths give exactly what each block computed on its own before."""

import numpy as np
import pytest

from thetanet.blockmatrix import BlockMatrix
from thetanet.compounds.features import BilinearPairsExtractor
from thetanet.compounds.features.cosines import SHARED, Products
from thetanet.compounds.features.neighbours import WordSpace, WordTable
from thetanet.compounds.system import NCClassifier, NCSettings
from thetanet.data.tratz import Compounds, labels_for, load_split

TRAIN = ["oil", "olive", "morning", "meeting", "driver", "bus", "tax", "law", "river", "bank"]
QUERIES = ["butter", "evening", "taxi", "oil", "qzxv", "oil", "bus"]


def test_products_compute_once_read_only_and_bounded():
    memo, calls = Products(max_entries=2), []

    def compute(v):
        return lambda: calls.append(v) or np.full(3, v, np.float32)

    a = memo.get("a", compute(1.0))
    assert memo.get("a", compute(9.0)) is a and calls == [1.0] and memo.hits == 1
    with pytest.raises(ValueError):
        a[0] = 2  # read-only: a block that changes it must copy first
    memo.get("b", compute(2.0))
    memo.get("c", compute(3.0))  # drops "a", the least recently used
    assert memo.get("a", compute(4.0))[0] == 4.0 and calls == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="max_entries"):
        Products(0)


@pytest.mark.parametrize("space", ["minilm+gloss", "minilm+gloss+wordnet"])
def test_shared_cosines_equal_each_space_alone(tmp_path, space):
    """Two spaces with the same dense part read one product: the cosines are those of a
    table that names no words (never shared), bit for bit; a caller's change to its
    result does not reach the next caller."""
    SHARED.clear()
    first = WordSpace(space, cache_dir=tmp_path).fit(TRAIN + QUERIES)
    other = WordSpace("minilm+gloss", cache_dir=tmp_path).fit(TRAIN + QUERIES)
    table = first.table(TRAIN)
    alone = first.cosines(QUERIES, WordTable(table.dense, table.wordnet, table.vocab))
    got = first.cosines(QUERIES, table)
    np.testing.assert_array_equal(got, alone)
    got[...] = -7  # the neighbours block clips its cosines in place
    hits = SHARED.hits
    dense = other.cosines(QUERIES, other.table(TRAIN))
    assert SHARED.hits == hits + 1 and not np.any(dense == -7)
    np.testing.assert_array_equal(dense, other.vectors(QUERIES) @ other.table(TRAIN).dense.T)
    if space.endswith("wordnet"):  # the WordNet part too, between spaces with WordNet
        again = WordSpace(space, cache_dir=tmp_path).fit(TRAIN + QUERIES)
        hits = SHARED.hits
        np.testing.assert_array_equal(again.cosines(QUERIES, again.table(TRAIN)), alone)
        assert SHARED.hits == hits + 2


def test_bilinear_coordinates_of_distinct_words_equal_per_row(tmp_path):
    """Each distinct word's coordinates once, then spread: the same as computing every
    row (repeats included) with the kernel-PCA formula (float32 cosines: a GEMM of other
    rows may round differently, so to float32 precision)."""
    e = BilinearPairsExtractor(cache_dir=tmp_path, d=3).fit(TRAIN[:6] * 2, TRAIN[4:] * 2)
    words = QUERIES + TRAIN[:3]
    state = e.get_state()["modifiers"]
    train_words, col, proj = state["words"], np.array(state["mean"]), np.array(state["projection"])
    space = WordSpace("minilm+gloss+wordnet", cache_dir=tmp_path).fit(TRAIN + QUERIES)
    k = np.array(space.cosines(words, space.table(train_words)), np.float64)
    want = (k - k.mean(axis=1, keepdims=True) - col[None, :] + col.mean()) @ proj
    np.testing.assert_allclose(e.coordinates(0, words), want, rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def fitted(data_root, tmp_path_factory):
    train, val = load_split("coarse_random", data_root)

    def cut(c, a, b):
        return Compounds(c.modifiers[a:b], c.heads[a:b], (c.labels or [])[a:b])

    settings = NCSettings(features=["words", "minilm-static", "pair-bilinear:d=2"], hidden=[],
                          max_epochs=1, patience=1, seeds=[0],
                          neighbours="k=5,space=minilm+gloss+wordnet; k=5,space=minilm+gloss")
    clf = NCClassifier(settings, list(labels_for("coarse_random")))
    clf.fit(cut(train, 0, 300), cut(val, 0, 60), cache_dir=tmp_path_factory.mktemp("cache"))
    return clf, cut(train, 300, 420), cut(train, 0, 300)


@pytest.mark.parametrize("training_rows", [False, True])
def test_grouped_transform_equals_one_piece(fitted, monkeypatch, training_rows):
    """A group of compounds at a time (so blocks share cosines): the same input as every
    block over all rows at once — for training rows too (the exclusion rule at each row's
    own position) — to float32 rounding (a GEMM of fewer rows may round differently; with
    fine_lexical's real groups the chosen models were equal bit for bit)."""
    clf, other, train = fitted
    data = train if training_rows else other
    whole = BlockMatrix.from_parts(
        clf.features.transform_parts(data.modifiers, data.heads)
        + [clf.neighbours.transform(data.modifiers, data.heads, training_rows=training_rows)])
    monkeypatch.setattr(type(clf.neighbours), "group_rows", lambda self: 7)
    grouped = clf.transform(data, training_rows=training_rows)
    assert len(whole.blocks) == len(grouped.blocks)
    for a, b in zip(whole.blocks, grouped.blocks):
        dense_a, dense_b = (x.toarray() if hasattr(x, "toarray") else x for x in (a, b))
        np.testing.assert_allclose(dense_b, dense_a, rtol=1e-5, atol=1e-6)
    if training_rows:  # a part of the training rows at the wrong position is refused
        with pytest.raises(ValueError, match="not the compounds"):
            clf.neighbours.transform(train.modifiers[5:9], train.heads[5:9], training_rows=True,
                                     first_row=4)
