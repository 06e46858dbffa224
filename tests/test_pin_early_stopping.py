"""Pins EarlyStopping's count to Keras's (issue 18, behaviour 2).

A scripted callback writes a chosen monitor sequence into the epoch logs, so the epoch at which
training stops and the epoch whose weights are restored follow from the rule alone. The same
sequences drive Keras's own ``EarlyStopping`` (where Keras is installed) through a stand-in
model, and both must stop at the same epoch and restore the same one. The sequences are
multiples of 1/8 and ``min_delta`` is 1/4, so every comparison is exact in float32 (Keras's
ops) and float64 alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from thetanet import Dense, EarlyStopping, Sequential
from thetanet.callbacks import Callback

KEY = "val_score"


class Scripted(Callback):
    """Logs ``values[epoch]`` as ``val_score`` and keeps the weights of every epoch."""

    def __init__(self, values: list[float]) -> None:
        self.values = values
        self.weights: list[list[np.ndarray]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        assert logs is not None
        logs[KEY] = self.values[epoch]
        self.weights.append(self.model.get_weights())


def _run(values: list[float], **es_kw: Any) -> tuple[int, int, bool]:
    """(epochs run, restored epoch or -1, stopped early) for thetanet's EarlyStopping."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 3)), rng.integers(0, 2, 16)
    model = Sequential([Dense(2, "softmax")], dtype="float64", seed=0)
    model.compile({"name": "sgd", "learning_rate": 0.5}, "sparse_categorical_crossentropy")
    script, es = Scripted(values), EarlyStopping(KEY, **es_kw)
    hist = model.fit(x, y, epochs=len(values), batch_size=4, seed=0, verbose=0,
                     callbacks=[script, es])
    ran = len(hist.epoch)
    assert ran == len(script.weights)
    restored = -1
    for e, snap in enumerate(script.weights):  # weights differ from epoch to epoch (SGD)
        if all(np.array_equal(a, b) for a, b in zip(model.get_weights(), snap)):
            restored = e
    assert es.stopped_epoch == (ran - 1 if model.stop_training else None)
    return ran, restored, bool(model.stop_training)


def _rising(n: int = 10) -> list[float]:
    return [1.0 + e / 8 for e in range(n)]


@pytest.mark.parametrize("patience", [0, 1, 2, 3, 5])
def test_patience_counts_epochs_without_improvement(patience):
    # the best epoch is the first; the run stops after `patience` (at least 1) worse epochs
    ran, restored, stopped = _run(_rising(), patience=patience, mode="min")
    assert stopped and ran == 1 + max(patience, 1)
    assert restored == 0


def test_docstring_example_patience_2_runs_three_epochs():
    assert _run(_rising(), patience=2)[:2] == (3, 0)  # "auto" reads val_score as a loss


def test_improvement_resets_the_count():
    #         0    1     2    3      4     5      6    7      8
    values = [1.0, 1.25, 0.5, 0.625, 0.25, 0.375, 0.5, 0.625, 0.75]
    assert _run(values, patience=2, mode="min")[:2] == (7, 4)
    assert _run(values, patience=3, mode="min")[:2] == (8, 4)


def test_a_tie_is_not_an_improvement():
    assert _run([1.0, 1.0, 1.0, 0.5, 0.25], patience=2, mode="min")[:2] == (3, 0)


def test_min_delta_needs_more_than_min_delta():
    # 0.75 is better than 1.0 by exactly min_delta: not an improvement; 0.625 is
    values = [1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25]
    assert _run(values, patience=2, min_delta=0.25, mode="min") == (3, 0, True)
    assert _run(values, patience=3, min_delta=0.25, mode="min") == (7, 6, False)
    # max mode, the mirror image
    negated = [-v for v in values]
    assert _run(negated, patience=2, min_delta=0.25, mode="max") == (3, 0, True)
    assert _run(negated, patience=3, min_delta=0.25, mode="max") == (7, 6, False)


def test_max_mode_and_auto_for_scores():
    values = [0.5, 0.625, 0.75, 0.625, 0.75, 0.5, 0.875]
    assert _run(values, patience=2, mode="max")[:2] == (5, 2)
    rng = np.random.default_rng(0)
    es = EarlyStopping("val_f1_weighted", patience=2)
    assert es.mode == "max"
    es.set_model(Sequential([Dense(2, "softmax")], seed=0).build(3))
    es.on_train_begin()
    for epoch, v in enumerate(rng.permutation(values)):
        es.on_epoch_end(epoch, {"val_f1_weighted": float(v)})
    assert es.best == max(values)


def test_no_restore_keeps_the_last_weights():
    ran, restored, _ = _run(_rising(), patience=2, mode="min", restore_best_weights=False)
    assert (ran, restored) == (3, 2)


def test_never_stops_while_improving():
    ran, restored, stopped = _run([1.0 - e / 8 for e in range(6)], patience=0, mode="min")
    assert (ran, restored, stopped) == (6, 5, False)


def test_nan_never_improves():
    ran, restored, _ = _run([1.0, float("nan"), float("nan"), 0.5], patience=2, mode="min")
    assert (ran, restored) == (3, 0)


# -- against Keras ---------------------------------------------------------------------------

def _sequences() -> list[tuple[list[float], dict[str, Any]]]:
    rng = np.random.default_rng(18)
    cases = []
    for i in range(40):
        values = (rng.integers(0, 12, 14) / 8).tolist()  # ties and plateaus are common
        kw = {"patience": int(rng.integers(0, 5)), "mode": ("min", "max")[i % 2],
              "min_delta": (0.0, 0.25)[(i // 2) % 2],
              "restore_best_weights": bool((i // 4) % 2 == 0)}
        cases.append((values, kw))
    cases.append((_rising(), {"patience": 2, "mode": "min", "min_delta": 0.0,
                              "restore_best_weights": True}))
    return cases


class _StandIn:
    """What Keras's EarlyStopping needs of a model: stop_training and the weights."""

    def __init__(self) -> None:
        self.stop_training = False
        self.epoch = -1
        self.restored = -1

    def get_weights(self) -> list[np.ndarray]:
        return [np.array(self.epoch)]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.restored = int(weights[0])


def _run_keras(keras: Any, values: list[float], **kw: Any) -> tuple[int, int, bool]:
    es = keras.callbacks.EarlyStopping(monitor=KEY, **kw)
    model = _StandIn()
    es.set_model(model)
    es.on_train_begin()
    ran = 0
    for epoch, v in enumerate(values):
        model.epoch, ran = epoch, epoch + 1
        es.on_epoch_end(epoch, {KEY: v})
        if model.stop_training:
            break
    es.on_train_end()
    restored = model.restored if kw.get("restore_best_weights") else ran - 1
    return ran, restored, model.stop_training



@pytest.mark.parametrize("case", range(len(_sequences())))
def test_stops_and_restores_as_keras(keras, case):
    values, kw = _sequences()[case]
    assert _run(values, **kw) == _run_keras(keras, values, **kw), (values, kw)
