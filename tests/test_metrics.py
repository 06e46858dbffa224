import numpy as np
import pytest

from thetanet import metrics, one_hot


def test_against_sklearn(rng):
    skm = pytest.importorskip("sklearn.metrics")
    t = rng.integers(0, 6, 300)
    p = np.where(rng.random(300) < 0.6, t, rng.integers(0, 7, 300))
    assert metrics.accuracy(t, p) == pytest.approx(skm.accuracy_score(t, p))
    for avg in ("macro", "weighted"):
        assert metrics.f1_score(t, p, avg) == pytest.approx(skm.f1_score(t, p, average=avg))
    np.testing.assert_array_equal(metrics.confusion_matrix(t, p, 7),
                                  skm.confusion_matrix(t, p, labels=range(7)))


def test_accepts_probabilities_and_onehot():
    t = np.array([0, 2, 1])
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    assert metrics.accuracy(one_hot(t, 3), probs) == pytest.approx(2 / 3)


def test_one_hot_errors():
    with pytest.raises(ValueError, match="out of range"):
        one_hot([0, 3], 3)
    with pytest.raises(ValueError, match="integers"):
        one_hot([0.5])
