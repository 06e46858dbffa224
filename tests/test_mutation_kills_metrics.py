"""Metrics, initialisers and the NC scorer: behaviour that mutation testing found unpinned
(issue 18; the mutants each test kills are listed in benchmarks/results/mutation.md)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import f1_score as sk_f1

from thetanet import initializers, metrics
from thetanet.compounds.scoring import PUBLISHED_BEST, format_report, score_labels


def test_f1_defaults_to_the_support_weighted_mean():
    t, p = np.array([0, 0, 0, 1, 2, 2]), np.array([0, 1, 0, 1, 2, 0])
    assert metrics.f1_score(t, p) == pytest.approx(sk_f1(t, p, average="weighted"), abs=1e-12)


def test_an_unpredicted_class_scores_0_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prec, rec, f1, support = metrics.precision_recall_f1([0, 1, 2], [0, 0, 0], 3)
    np.testing.assert_allclose(prec, [1 / 3, 0, 0])
    np.testing.assert_allclose(f1, [0.5, 0, 0])
    assert support.tolist() == [1, 1, 1]


def test_float_labels_round_to_the_nearest_class():
    noisy = np.array([0.0, 0.9999999, 2.0000001, 1.0], np.float32)
    assert metrics.to_labels(noisy).tolist() == [0, 1, 2, 1]


# -- initialisers ------------------------------------------------------------------------------

def test_a_1d_glorot_shape_uses_its_length_as_both_fans():
    w = initializers.glorot_uniform((6,), np.random.default_rng(0), np.float64)
    bound = np.sqrt(6 / 12)
    assert w.shape == (6,) and np.all(np.abs(w) <= bound) and np.abs(w).max() > bound / 4


def test_named_initialisers_load_from_a_config():
    assert initializers.get({"name": "he_normal"}) is initializers.he_normal
    with pytest.raises(ValueError, match="unknown initializer config"):
        initializers.get({"name": "he_normal", "gain": 2})
    with pytest.raises(TypeError, match="name, config or callable"):
        initializers.get(3)  # type: ignore[arg-type]


def test_a_normal_initialiser_round_trips_through_its_config():
    init = initializers.normal(stddev=0.2, mean=1.0)
    cfg = initializers.serialize(init)
    assert cfg == {"name": "normal", "stddev": 0.2, "mean": 1.0}
    again = initializers.get(cfg)
    a = init((50, 40), np.random.default_rng(3), np.float64)
    np.testing.assert_array_equal(again((50, 40), np.random.default_rng(3), np.float64), a)


# -- the NC scorer -----------------------------------------------------------------------------

GOLD = ["A", "A", "A", "B", "C", "C"]
PRED = ["A", "A", "B", "B", "C", "D"]


def test_per_relation_scores_include_relations_only_gold_or_only_predicted():
    res = score_labels(GOLD + ["E"], PRED + ["A"])
    assert set(res["per_relation"]) == {"A", "B", "C", "D", "E"}
    assert res["per_relation"]["D"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                        "support": 0}
    assert res["per_relation"]["E"]["recall"] == 0.0 and res["per_relation"]["E"]["support"] == 1


def test_a_given_label_inventory_keeps_its_order():
    res = score_labels(GOLD, PRED, labels=["D", "C", "B", "A", "Z"])
    assert res["labels"] == ["D", "C", "B", "A", "Z"]
    assert np.array(res["confusion"]).shape == (5, 5)
    assert res["confusion"][3] == [0, 0, 1, 2, 0]  # gold A: predicted B once, A twice


def test_gold_and_predictions_of_different_lengths_are_refused_with_the_counts():
    with pytest.raises(ValueError, match="3 gold labels but 2 predictions"):
        score_labels(["A", "B", "C"], ["A", "B"])


def test_the_report_names_the_set_compares_with_the_published_best_and_sorts_by_support():
    res = score_labels(GOLD, PRED)
    split, best = next(iter(PUBLISHED_BEST.items()))
    text = format_report(res, split)
    lines = text.splitlines()
    assert lines[0].startswith("val: n=6  accuracy=0.6667")
    assert f"(ours on val: {res['weighted_f1']:.3f}, {res['weighted_f1'] - best:+.3f})" in text
    rows = [ln.split()[0] for ln in lines[3:]]
    assert rows == ["A", "C", "B", "D"]  # support 3, 2, 1, 0
