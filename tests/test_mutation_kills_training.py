"""Training-loop behaviour that mutation testing found unpinned (issue 18; the mutants each test
kills are listed in benchmarks/results/mutation.md): the progress display, checkpoints every
k batches, divergence without validation data, validation through an unfused output, the
inference-mode forward/backward of a dropout model, and what a loaded checkpoint holds."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from interrupts import InterruptAt

from thetanet import Dense, Dropout, EarlyStopping, Sequential, load_checkpoint
from thetanet.callbacks import Callback, ProgressLogger
from thetanet.checkpoint import read_checkpoint
from thetanet.gradcheck import backprop_gradients, gradcheck, numerical_gradients, relative_error
from thetanet.optimizers import SGD
from thetanet.training import DivergenceWarning


def _data(n: int = 10, d: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, rng.integers(0, 3, n)


def _model(opt="sgd", dropout: float = 0.0, dtype: str = "float32") -> Sequential:
    layers = [Dense(6, "tanh"), *([Dropout(dropout)] if dropout else []), Dense(3, "softmax")]
    model = Sequential(layers, dtype=dtype, seed=1)
    model.compile(opt, "sparse_categorical_crossentropy")
    return model


# -- the progress display ------------------------------------------------------------------------

class _Bar:
    """Stands in for tqdm and records what the user would see."""

    def __init__(self, bars: list, total: int, desc: str, **_: object) -> None:
        self.total, self.desc, self.n, self.updates, self.postfix = total, desc, 0, [], ""
        bars.append(self)

    def update(self, k: int) -> None:
        self.n += k
        self.updates.append(k)

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        self.postfix = s

    def close(self) -> None:
        pass


@pytest.fixture
def bars(monkeypatch):
    made: list[_Bar] = []
    monkeypatch.setattr("tqdm.auto.tqdm", lambda **kw: _Bar(made, **kw))
    return made


def test_verbose_1_shows_one_bar_per_epoch_with_the_running_loss(bars, capsys):
    x, y = _data()
    hist = _model().fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=1)
    assert [(b.desc, b.total, b.updates) for b in bars] == \
        [("Epoch 1/2", 10, [4, 4, 2]), ("Epoch 2/2", 10, [4, 4, 2])]
    for bar, loss in zip(bars, hist.history["loss"]):
        assert bar.postfix == f"loss {loss:.4f}"  # the example-weighted mean of the batches
    assert "Epoch 1/2 -" not in capsys.readouterr().err  # the bar, not a summary line


def test_verbose_1_without_tqdm_and_verbose_2_print_one_line_per_epoch(monkeypatch, capsys):
    x, y = _data()
    hist = _model().fit(x, y, epochs=2, batch_size=4, verbose=2)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails: no bar possible
    hist1 = _model().fit(x, y, epochs=2, batch_size=4, verbose=1)
    err = capsys.readouterr().err.splitlines()
    assert err == [f"Epoch {e + 1}/2 - loss: {h.history['loss'][e]:.4f}"
                   for h in (hist, hist1) for e in range(2)]


def test_the_progress_logger_takes_the_callback_protocol_without_logs(capsys):
    logger = ProgressLogger(2, 1, 10)
    logger.on_epoch_begin(0)
    logger.on_epoch_end(0, {"loss": 0.5})
    assert capsys.readouterr().err == "Epoch 1/1 - loss: 0.5000\n"


def test_a_resumed_epoch_bar_continues_where_the_epoch_stopped(bars, tmp_path):
    x, y = _data(12)
    fit = {"epochs": 1, "batch_size": 4, "seed": 3}
    ref = _model().fit(x, y, verbose=0, **fit)
    with pytest.raises(KeyboardInterrupt):
        _model().fit(x, y, verbose=0, checkpoint=tmp_path, callbacks=[InterruptAt(2)], **fit)
    hist = _model().fit(x, y, verbose=1, checkpoint=tmp_path, resume=True,
                        callbacks=[InterruptAt(-1)], **fit)
    assert hist.history == ref.history
    assert len(bars) == 1 and bars[0].updates == [8, 4]  # starts at 8 of 12 examples
    assert bars[0].postfix == f"loss {ref.history['loss'][0]:.4f}"  # the whole epoch's mean


# -- checkpoints every k batches -----------------------------------------------------------------

class _CrashingSGD(SGD):
    """Plain SGD that fails at its ``k``-th step, before updating: a crash mid-epoch."""

    def __init__(self, k: int) -> None:
        super().__init__(0.1)
        self.k = k

    def step(self, params, grads, rows=None):
        if self.iterations + 1 == self.k:
            raise RuntimeError("crash")
        super().step(params, grads, rows)


def test_a_crash_leaves_the_checkpoint_of_the_last_kth_batch(tmp_path):
    x, y = _data(40)  # 10 batches of 4
    fit = {"epochs": 2, "batch_size": 4, "seed": 3, "verbose": 0, "checkpoint_every": 3}
    with pytest.raises(RuntimeError, match="crash"):
        _model(_CrashingSGD(8)).fit(x, y, checkpoint=tmp_path, **fit)
    st = read_checkpoint(tmp_path)[2]
    assert (st["epoch"], st["offset"]) == (0, 24)  # after batches 3 and 6, not 7
    resumed = _model(_CrashingSGD(0))  # never crashes
    resumed.fit(x, y, checkpoint=tmp_path, resume=True, **fit)
    ref = _model(_CrashingSGD(0))
    ref.fit(x, y, **fit)
    for a, b in zip(resumed.get_weights(), ref.get_weights()):
        assert a.tobytes() == b.tobytes()


# -- divergence without validation data ----------------------------------------------------------

class _ExplodeAfter(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch, self.seen = epoch, []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append((logs["loss"], self.model.get_weights()))
        if epoch == self.epoch:
            self.model.optimizer.learning_rate = 1e30


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_without_validation_restores_the_epoch_of_lowest_training_loss():
    x, y = _data(40)
    model = _model({"name": "sgd", "learning_rate": 0.05})
    cb = _ExplodeAfter(2)
    with pytest.warns(DivergenceWarning) as caught:
        model.fit(x, y, epochs=10, batch_size=10, seed=0, verbose=0, callbacks=[cb])
    best = int(np.argmin([loss for loss, _ in cb.seen]))
    msgs = [str(w.message) for w in caught if w.category is DivergenceWarning]
    assert len(msgs) == 1 and f"weights of epoch {best + 1} (best loss" in msgs[0]
    for a, b in zip(model.get_weights(), cb.seen[best][1]):
        assert np.array_equal(a, b)


# -- evaluation paths ----------------------------------------------------------------------------

def test_validation_loss_through_an_unfused_output():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(16, 3)), rng.normal(size=(16, 2))
    xv, yv = rng.normal(size=(7, 3)), rng.normal(size=(7, 2))
    model = Sequential([Dense(4, "tanh"), Dense(2)], dtype="float64", seed=0)
    model.compile("sgd", "mse")
    hist = model.fit(x, y, epochs=2, batch_size=8, validation_data=(xv, yv), verbose=0)
    expected = float(((model.predict(xv) - yv) ** 2).mean())
    assert hist.history["val_loss"][-1] == pytest.approx(expected, rel=1e-12)


def test_inference_forward_backward_of_a_dropout_model_has_no_noise():
    x, y = _data(8)
    model = _model(dropout=0.5, dtype="float64")
    model.build(5)
    first = model.forward_backward(x, y, training=False)[0]
    assert model.forward_backward(x, y, training=False)[0] == first
    assert first == pytest.approx(model.evaluate(x, y), rel=1e-12)
    assert gradcheck(model, x, y, training=False) < 1e-6  # its gradients match that J


def test_numerical_gradients_with_their_defaults_match_backprop():
    x, y = _data(6)
    model = _model(dtype="float64")
    model.build(5)
    num = numerical_gradients(model, x, y)
    bp = backprop_gradients(model, x, y)
    assert max(relative_error(a, b) for a, b in zip(num, bp)) < 1e-6


def test_a_loaded_checkpoint_has_the_compiled_optimiser_with_its_state(tmp_path):
    x, y = _data(20)
    model = _model({"name": "adam", "learning_rate": 0.01})
    model.fit(x, y, epochs=2, batch_size=5, seed=0, verbose=0, checkpoint=tmp_path)
    ck = load_checkpoint(tmp_path)
    opt = ck.model.optimizer
    assert opt is not None and opt.get_config() == model.optimizer.get_config()
    assert opt.iterations == model.optimizer.iterations == 8
    for a, b in zip(opt.m + opt.v, model.optimizer.m + model.optimizer.v):
        assert np.array_equal(a, b)


def test_resuming_with_other_callbacks_names_them(tmp_path):
    x, y = _data(20)
    _model().fit(x, y, epochs=1, batch_size=5, verbose=0, checkpoint=tmp_path)
    with pytest.raises(ValueError, match=r"written with callbacks \[\], this fit has "
                                         r"\['EarlyStopping'\]"):
        _model().fit(x, y, epochs=2, batch_size=5, verbose=0, checkpoint=tmp_path, resume=True,
                     callbacks=[EarlyStopping("loss")])
