"""The refit beside the selection (compounds/concurrent_refit.py): bit for bit the sequential
refit, whichever thread runs ahead; failures on either side surface; no thread outlives it."""

import threading

import numpy as np
import pytest

from thetanet.callbacks import Callback
from thetanet.compounds.progress import Progress
from thetanet.compounds.system import NCClassifier, NCSettings
from thetanet.data.tratz import Compounds, labels_for, load_split

LABELS = list(labels_for("coarse_random"))


@pytest.fixture(scope="module")
def small(data_root):
    train, val = load_split("coarse_random", data_root)

    def cut(c, n):
        return Compounds(c.modifiers[:n], c.heads[:n], (c.labels or [])[:n])

    return cut(train, 1200), cut(val, 300)


def _settings(**kw):
    base = {"features": ["words"], "hidden": [8], "dropout": 0.5, "input_dropout": 0.2,
            "max_epochs": 6, "patience": 1, "batch_size": 64, "seeds": [0, 1]}
    return NCSettings(**{**base, **kw})


def _same_weights(a, b):
    assert len(a.members) == len(b.members)
    for ma, mb in zip(a.members, b.members):
        for wa, wb in zip(ma.get_weights(), mb.get_weights()):
            np.testing.assert_array_equal(wa, wb)


def _sequential(settings, train, val, cache):
    return NCClassifier(settings, LABELS).fit(train, val, cache_dir=cache).refit(
        train, val, cache_dir=cache)


class _Hooks(Progress):
    """Progress whose member callbacks run ``hooks[(phase, hook)](member, epoch, model)``."""

    def __init__(self, **hooks):
        self.hooks = hooks

    def member(self, phase, index, count, epochs, es):
        hooks = self.hooks

        class Hook(Callback):
            def on_epoch_begin(self, epoch, logs=None):
                hooks.get(f"{phase}_epoch_begin", lambda *a: None)(index, epoch, self.model)

            def on_epoch_end(self, epoch, logs=None):
                hooks.get(f"{phase}_epoch_end", lambda *a: None)(index, epoch, self.model)

            def on_train_end(self, logs=None):
                hooks.get(f"{phase}_train_end", lambda *a: None)(index, -1, self.model)
        return Hook()


@pytest.mark.parametrize("kw", [
    {},                                            # early stopping, two members
    {"patience": 10, "max_epochs": 4},             # runs to max_epochs: best may be the last
    {"logit_adjustment": 0.7, "patience": 2, "seeds": [3]},  # selects on adjusted val-F1
    {"hidden": [], "l2": 1e-3, "patience": 0},     # softmax regression, stops at once
])
def test_alongside_is_the_sequential_refit_bit_for_bit(small, tmp_path, kw):
    train, val = small
    before = threading.active_count()
    a = NCClassifier(_settings(**kw), LABELS).select_and_refit(train, val, cache_dir=tmp_path)
    assert threading.active_count() == before
    b = _sequential(_settings(**kw), train, val, tmp_path)
    assert a.selection.best_epochs == b.selection.best_epochs
    assert a.selection.scores == b.selection.scores
    _same_weights(a, b)
    assert a.histories == b.histories  # the refit's epochs only
    assert [len(h["loss"]) for h in a.histories] == a.selection.epochs
    assert a.features.get_config() == b.features.get_config()
    np.testing.assert_array_equal(a.class_prior, b.class_prior)
    assert a.report["refit"]["alongside"] and not b.report["refit"]["alongside"]
    assert a.report["refit"]["epochs"] == b.report["refit"]["epochs"]
    assert a.report["trained_on"] == b.report["trained_on"]
    np.testing.assert_array_equal(a.predict_proba(val), b.predict_proba(val))


def test_refit_far_behind_stops_at_the_chosen_epoch(small, tmp_path):
    """The refit of each member starts only once its selection has ended: it never copies
    weights, it stops right after the chosen epoch."""
    train, val = small
    ended = [threading.Event(), threading.Event()]
    ran = {}
    hooks = _Hooks(select_train_end=lambda i, e, m: ended[i].set(),
                   refit_epoch_begin=lambda i, e, m: e == 0 and ended[i].wait(),
                   refit_train_end=lambda i, e, m: ran.setdefault(
                       i, len(m.history.history["loss"])))
    a = NCClassifier(_settings(), LABELS).select_and_refit(train, val, cache_dir=tmp_path,
                                                           progress=hooks)
    _same_weights(a, _sequential(_settings(), train, val, tmp_path))
    assert [ran[0], ran[1]] == a.selection.epochs


def test_refit_close_behind_takes_back_its_copy(small, tmp_path):
    """The selection waits at each epoch end until the refit has begun the next epoch (or
    stopped): the refit is past the chosen epoch when the selection stops, and restores the
    copy it kept."""
    train, val = small
    cond = threading.Condition()
    state = {"begun": [-1, -1], "stopped": [False, False]}
    refit_ran = {}

    def refit_begins(i, epoch, model):
        with cond:
            state["begun"][i] = epoch
            cond.notify_all()

    def refit_ends(i, epoch, model):
        with cond:
            state["stopped"][i] = True
            cond.notify_all()
        refit_ran[i] = len(model.history.history["loss"])  # epochs trained, before the cut

    def selection_waits(i, epoch, model):
        with cond:
            cond.wait_for(lambda: state["begun"][i] > epoch or state["stopped"][i])

    hooks = _Hooks(refit_epoch_begin=refit_begins, refit_train_end=refit_ends,
                   select_epoch_end=selection_waits)
    settings = _settings(patience=2, max_epochs=8)
    a = NCClassifier(settings, LABELS).select_and_refit(train, val, cache_dir=tmp_path,
                                                        progress=hooks)
    b = _sequential(_settings(patience=2, max_epochs=8), train, val, tmp_path)
    _same_weights(a, b)
    # past the chosen epoch when the selection stopped (it ran `patience` epochs beyond)
    assert all(refit_ran[i] == len(h["loss"]) > a.selection.epochs[i]
               for i, h in enumerate(a.selection.histories))


def test_a_failing_refit_surfaces_and_ends_its_thread(small, tmp_path):
    train, val = small
    before = threading.active_count()

    def boom(i, epoch, model):
        if epoch == 1:
            raise RuntimeError("refit broke in epoch 2")

    with pytest.raises(RuntimeError, match="refit broke in epoch 2"):
        NCClassifier(_settings(patience=10), LABELS).select_and_refit(
            train, val, cache_dir=tmp_path, progress=_Hooks(refit_epoch_end=boom))
    assert threading.active_count() == before


def test_a_failing_selection_stops_the_refit(small, tmp_path):
    train, val = small
    before = threading.active_count()

    def boom(i, epoch, model):
        if epoch == 2:
            raise KeyboardInterrupt("stopped by the user")

    with pytest.raises(KeyboardInterrupt, match="stopped by the user"):
        NCClassifier(_settings(patience=10), LABELS).select_and_refit(
            train, val, cache_dir=tmp_path, progress=_Hooks(select_epoch_end=boom))
    assert threading.active_count() == before


def test_sequential_when_asked_or_with_checkpoints(small, tmp_path):
    train, val = small
    plain = NCClassifier(_settings(), LABELS).select_and_refit(train, val, cache_dir=tmp_path,
                                                               alongside=False)
    assert not plain.report["refit"]["alongside"]
    ck = NCClassifier(_settings(), LABELS).select_and_refit(
        train, val, cache_dir=tmp_path, checkpoint_dir=tmp_path / "ck")
    assert not ck.report["refit"]["alongside"]
    assert (tmp_path / "ck" / "refit-member-0").exists()
    _same_weights(plain, ck)
