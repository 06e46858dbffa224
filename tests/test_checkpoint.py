"""Checkpoints: exact resume after SIGKILL / SIGINT, divergence, concurrent writers."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from interrupts import InterruptAt

from thetanet import Dense, Dropout, EarlyStopping, Sequential
from thetanet.callbacks import Callback
from thetanet.checkpoint import CHECKPOINT_NAME, ResumedFinishedWarning, read_checkpoint
from thetanet.files import ModelFileError, load_arrays
from thetanet.model import DivergenceWarning, load_checkpoint

HELPERS = Path(__file__).parent / "helpers"
TRAIN = HELPERS / "train_ckpt.py"
pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")


def run_helper(*args: Any, check: bool = True, timeout: float = 120
               ) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, str(TRAIN), *map(str, args)], capture_output=True,
                       text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def result(out: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    return load_arrays(out), json.loads(Path(f"{out}.json").read_text())


def assert_same(a: tuple, b: tuple, note: str = "") -> None:
    wa, ha = a
    wb, hb = b
    assert wa.keys() == wb.keys()
    for k in wa:
        assert wa[k].dtype == wb[k].dtype
        assert wa[k].tobytes() == wb[k].tobytes(), f"weights {k} differ {note}"
    assert ha == hb, note


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> dict[str, tuple]:
    """Uninterrupted runs of the helper, one per configuration."""
    d = tmp_path_factory.mktemp("ref")
    refs = {}
    for config in ("adam", "sgd"):
        out = d / f"{config}.npz"
        run_helper("--checkpoint", d / f"ck-{config}", "--out", out, "--config", config,
                   "--quiet")
        refs[config] = result(out)
    return refs


def start(ck: Path, out: Path, config: str, *extra: Any) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(TRAIN), "--checkpoint", str(ck), "--out",
                             str(out), "--config", config, *map(str, extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_batch(proc: subprocess.Popen, k: int) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("batch ") and int(line.split()[1]) >= k:
            return
    raise AssertionError(f"the run ended before batch {k}: {proc.stderr.read()}")


# --------------------------------------------------------------------------------------------
# Acceptance 1: SIGKILL at random points, resume, bit-identical
# --------------------------------------------------------------------------------------------

def test_sigkill_at_random_points_then_resume_is_bit_identical(references, tmp_path):
    seed = int(os.environ.get("THETANET_KILL_SEED", "20260806"))  # set it to try other points
    rnd = random.Random(seed)
    # 6 epochs × 40 batches; checkpoints every 3 batches and at every epoch end.
    points = [("adam", [rnd.randrange(1, 230)]), ("sgd", [rnd.randrange(1, 230)]),
              ("adam", [rnd.randrange(1, 120), rnd.randrange(1, 100)])]  # killed twice
    for i, (config, kills) in enumerate(points):
        ck, out = tmp_path / f"ck{i}", tmp_path / f"out{i}.npz"
        for k in kills:
            proc = start(ck, out, config, "--resume")
            wait_for_batch(proc, k)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            assert proc.returncode == -signal.SIGKILL
            assert not out.exists()
        run_helper("--checkpoint", ck, "--out", out, "--config", config, "--resume", "--quiet")
        # temp files of a write killed mid-way are swept by the next write
        assert sorted(p.name.split("-")[0] for p in ck.iterdir()) == [CHECKPOINT_NAME, "state"]
        assert_same(result(out), references[config],
                    f"(config {config}, killed after batches {kills}, "
                    f"THETANET_KILL_SEED={seed})")


# --------------------------------------------------------------------------------------------
# Acceptance 4: SIGINT → 130 within 2 s, loadable checkpoint (and an exact resume)
# --------------------------------------------------------------------------------------------

def test_sigint_exits_130_after_the_batch_with_a_loadable_checkpoint(references, tmp_path):
    ck, out = tmp_path / "ck", tmp_path / "out.npz"
    proc = start(ck, out, "adam", "--sleep", "0.02", "--every", "1000")
    wait_for_batch(proc, 17)
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(timeout=30)
    stderr = proc.stderr.read()
    assert rc == 130, stderr
    assert "checkpoint written" in stderr
    done = [int(line.split()[1]) for line in proc.stdout if line.startswith("batch ")]
    ckpt = load_checkpoint(ck)
    assert ckpt.epoch == 0 and 17 * 8 <= ckpt.batch_offset < 320  # mid-epoch, after a batch
    # it stopped after the batch in flight: the checkpoint holds every batch it announced
    assert ckpt.batch_offset == 8 * max(done, default=17)
    assert ckpt.model.predict(np.zeros((2, 12), np.float32)).shape == (2, 3)
    assert ckpt.model.optimizer.iterations == ckpt.batch_offset // 8
    run_helper("--checkpoint", ck, "--out", out, "--resume", "--quiet")
    assert_same(result(out), references["adam"], "(after SIGINT)")


def _data(n: int = 96, d: int = 6, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = np.argmax(x @ rng.normal(size=(d, k)), axis=1)
    return x, y


def _model(opt: Any = "adam", dropout: float = 0.3, metrics: tuple = ("accuracy",)
           ) -> Sequential:
    m = Sequential([Dense(10, "relu"), Dropout(dropout), Dense(3, "softmax")], seed=1)
    m.compile(opt, "sparse_categorical_crossentropy", metrics=list(metrics))
    return m


FIT = {"epochs": 4, "batch_size": 10, "seed": 5, "verbose": 0}


@pytest.mark.parametrize("k", [1, 7, 10, 23, 40])
@pytest.mark.parametrize("opt,every", [("adam", None), ({"name": "sgd", "learning_rate": 0.1,
                                                         "momentum": 0.9}, 4)])
def test_in_process_interrupt_and_resume_is_exact(tmp_path, k, opt, every):
    x, y = _data()
    val = _data(30, seed=1)
    ref = _model(opt)
    es = EarlyStopping("val_loss", patience=10)
    ref_hist = ref.fit(x, y, validation_data=val, callbacks=[es], **FIT)

    ck = tmp_path / "ck"
    first = _model(opt)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="checkpoint written"):
        first.fit(x, y, validation_data=val, checkpoint=ck, checkpoint_every=every,
                  callbacks=[EarlyStopping("val_loss", patience=10), InterruptAt(k)], **FIT)
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    st = read_checkpoint(ck)[2]  # exactly after global batch k (10 batches an epoch)
    assert (st["epoch"], st["offset"]) == ((k - 1) // 10, min((k - 1) % 10 * 10 + 10, 96))

    again = _model(opt)
    hist = again.fit(x, y, validation_data=val, checkpoint=ck, resume=True,
                     callbacks=[EarlyStopping("val_loss", patience=10), InterruptAt(-1)],
                     **FIT)
    for a, b in zip(again.get_weights(), ref.get_weights()):
        assert a.tobytes() == b.tobytes()
    assert hist.history == ref_hist.history
    assert list(hist.history) == list(ref_hist.history)  # key order too


def test_resume_full_batch_no_shuffle_and_extend_epochs(tmp_path):
    x, y = _data()
    ref = _model("adam", metrics=())
    ref.fit(x, y, epochs=5, batch_size=None, shuffle=False, seed=2, verbose=0)
    m = _model("adam", metrics=())
    m.fit(x, y, epochs=3, batch_size=None, shuffle=False, seed=2, verbose=0,
          checkpoint=tmp_path / "c")
    m2 = _model("adam", metrics=())
    m2.fit(x, y, epochs=5, batch_size=None, shuffle=False, seed=2, verbose=0,
           checkpoint=tmp_path / "c", resume=True)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(m2.get_weights(), ref.get_weights()))


def test_resume_from_a_finished_checkpoint_repeats_the_result(tmp_path):
    x, y = _data()
    val = _data(30, seed=1)
    m = _model()
    m.fit(x, y, validation_data=val, callbacks=[EarlyStopping("val_accuracy", patience=0)],
          checkpoint=tmp_path / "c", **FIT)
    m2 = _model()
    with pytest.warns(ResumedFinishedWarning, match="finished run"):  # said, not silent
        hist = m2.fit(x, y, validation_data=val, checkpoint=tmp_path / "c", resume=True,
                      callbacks=[EarlyStopping("val_accuracy", patience=0)], **FIT)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(m2.get_weights(), m.get_weights()))
    assert hist.history == m.history.history


def test_resume_without_checkpoint_starts_fresh_and_needs_a_path(tmp_path):
    x, y = _data()
    a, b = _model(), _model()
    a.fit(x, y, **FIT)
    b.fit(x, y, checkpoint=tmp_path / "none-yet", resume=True, **FIT)
    assert all(p.tobytes() == q.tobytes() for p, q in zip(a.get_weights(), b.get_weights()))
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "none-yet").iterdir()) == [
        CHECKPOINT_NAME, "state"]
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        _model().fit(x, y, resume=True, **FIT)
    with pytest.raises(ValueError, match="checkpoint_every"):
        _model().fit(x, y, checkpoint=tmp_path / "x", checkpoint_every=0, **FIT)


def test_resume_refuses_a_different_run(tmp_path):
    x, y = _data()
    _model().fit(x, y, checkpoint=tmp_path / "c", **FIT)
    with pytest.raises(ValueError, match="different run.*data"):
        _model().fit(x + 1, y, checkpoint=tmp_path / "c", resume=True, **FIT)
    with pytest.raises(ValueError, match="different run.*batch_size"):
        _model().fit(x, y, checkpoint=tmp_path / "c", resume=True,
                     **{**FIT, "batch_size": 7})
    with pytest.raises(ValueError, match="different architecture"):
        other = Sequential([Dense(11, "relu"), Dense(3, "softmax")], seed=1)
        other.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        other.fit(x, y, checkpoint=tmp_path / "c", resume=True, **FIT)
    with pytest.raises(ValueError, match="different optimiser"):
        _model("sgd").fit(x, y, checkpoint=tmp_path / "c", resume=True, **FIT)
    with pytest.raises(ValueError, match="callbacks"):
        _model().fit(x, y, checkpoint=tmp_path / "c", resume=True,
                     callbacks=[EarlyStopping("loss")], **FIT)


def test_tampered_checkpoint_refused(tmp_path):
    x, y = _data()
    _model().fit(x, y, checkpoint=tmp_path / "c", **FIT)
    doc = json.loads((tmp_path / "c" / CHECKPOINT_NAME).read_text())
    npz = tmp_path / "c" / doc["arrays_file"]
    raw = bytearray(npz.read_bytes())
    raw[200] ^= 0x10
    npz.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match=doc["arrays_file"]):
        load_checkpoint(tmp_path / "c")
    with pytest.raises(ModelFileError):
        _model().fit(x, y, checkpoint=tmp_path / "c", resume=True, **FIT)
    doc["format_version"] = 7
    (tmp_path / "c" / CHECKPOINT_NAME).write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match="format 7.*upgrade"):
        load_checkpoint(tmp_path / "c")


def test_sigint_without_checkpoint_raises_after_the_batch():
    x, y = _data()
    m = _model()
    with pytest.raises(KeyboardInterrupt, match="interrupted in epoch 1, 30 of 96"):
        m.fit(x, y, callbacks=[InterruptAt(3)], **FIT)
    assert m.optimizer.iterations == 3
    assert m.history is not None


# --------------------------------------------------------------------------------------------
# Divergence
# --------------------------------------------------------------------------------------------

class _Explode(Callback):
    """Record each epoch's weights and val_loss; raise the learning rate after ``epoch``."""

    def __init__(self, epoch: int) -> None:
        self.epoch, self.seen = epoch, []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append((logs["val_loss"], self.model.get_weights()))
        if epoch == self.epoch:
            self.model.optimizer.learning_rate = 1e30


def test_divergence_restores_the_best_weights_so_far(tmp_path):
    x, y = _data()
    val = _data(30, seed=1)
    m = Sequential([Dense(10, "relu"), Dense(3, "softmax")], seed=1)
    m.compile({"name": "sgd", "learning_rate": 0.05}, "sparse_categorical_crossentropy")
    cb = _Explode(2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hist = m.fit(x, y, validation_data=val, callbacks=[cb], epochs=10, batch_size=10,
                     seed=0, verbose=0, checkpoint=tmp_path / "c")
    div = [w for w in caught if issubclass(w.category, DivergenceWarning)]
    msgs = [str(w.message) for w in div]
    assert len(msgs) == 1 and "epoch 4" in msgs[0] and "lower learning rate" in msgs[0]
    assert div[0].filename == __file__  # points at the caller's fit line
    best = int(np.argmin([v for v, _ in cb.seen]))
    assert f"weights of epoch {best + 1}" in msgs[0]
    for a, b in zip(m.get_weights(), cb.seen[best][1]):
        assert np.array_equal(a, b)
    assert hist.stopped_reason == msgs[0] and len(hist.history["loss"]) == 3
    # the final checkpoint holds the restored state, marked finished
    ck = load_checkpoint(tmp_path / "c")
    assert ck.state["finished"] is True
    for a, b in zip(ck.model.get_weights(), m.get_weights()):
        assert np.array_equal(a, b)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_in_the_first_epoch_restores_the_initial_weights():
    x, y = _data()
    m = Sequential([Dense(10, "relu"), Dense(1, "identity")], seed=1)
    m.compile({"name": "sgd", "learning_rate": 1e30}, "mse")
    m.build(6)
    start = m.get_weights()
    with pytest.warns(DivergenceWarning, match="epoch 1.*initial weights"):
        m.fit(x * 1e3, y.astype(np.float32), epochs=3, batch_size=10, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(m.get_weights(), start))


# --------------------------------------------------------------------------------------------
# Concurrent writers
# --------------------------------------------------------------------------------------------

def _writers(helper: str, out: Path, tmp: Path, rounds: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, str(HELPERS / helper), str(out), str(w),
                              str(rounds), str(tmp / f"ref{w}.npz")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for w in (1, 2)]


def _model_saver_script(tmp: Path) -> str:
    script = tmp / "save_loop.py"
    script.write_text(
        "import sys\nimport numpy as np\nfrom thetanet import Dense, Sequential\n"
        "from thetanet.files import save_arrays\n"
        "out, w, rounds, ref = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]\n"
        "m = Sequential([Dense(64, 'relu'), Dense(8, 'softmax')], seed=w)\nm.build(32)\n"
        "save_arrays(ref, {f'w{i:03d}': a for i, a in enumerate(m.get_weights())})\n"
        "for i in range(rounds):\n    m.save(out, metadata={'writer': w, 'round': i})\n")
    return str(script)


def test_concurrent_model_saves_never_mix(tmp_path):
    """Two processes save different models to one directory while this one keeps loading."""
    from thetanet import load_model

    script = _model_saver_script(tmp_path)
    out = tmp_path / "model"
    procs = [subprocess.Popen([sys.executable, script, str(out), str(w), "150",
                               str(tmp_path / f"ref{w}.npz")], stderr=subprocess.PIPE,
                              text=True) for w in (1, 2)]
    loads = 0
    while any(p.poll() is None for p in procs):
        if not (out / "config.json").exists() or not all(
                (tmp_path / f"ref{w}.npz").exists() for w in (1, 2)):
            time.sleep(0.005)
            continue
        m = load_model(out)  # must never fail: the lock + retry make reads consistent
        ref = load_arrays(tmp_path / f"ref{m.metadata['writer']}.npz")
        assert all(np.array_equal(a, ref[f"w{i:03d}"]) for i, a in enumerate(m.get_weights()))
        loads += 1
    for p in procs:
        assert p.wait() == 0, p.stderr.read()
    final = load_model(out)
    assert final.metadata["round"] == 149
    assert len(list(out.glob("weights-*.npz"))) == 1
    assert loads > 0


def _nc_check(out: Path, tmp: Path) -> None:
    from thetanet.compounds.system import NCClassifier

    clf = NCClassifier.load(out, cache_dir=False)
    ref = load_arrays(tmp / f"ref{clf.metadata['writer']}.npz")
    for i, m in enumerate(clf.members):
        for j, w in enumerate(m.get_weights()):
            assert np.array_equal(w, ref[f"m{i}w{j}"]), "a mixed noun-compound model"


def test_concurrent_nc_saves_never_leave_a_mixed_model(tmp_path):
    """Whatever the interleaving, the directory ends as one writer's whole system."""
    out = tmp_path / "nc-model"
    procs = _writers("nc_save_loop.py", out, tmp_path, 40)
    for p in procs:
        p.wait(timeout=120)
    _nc_check(out, tmp_path)


def test_concurrent_nc_saves_all_succeed(tmp_path):
    out = tmp_path / "nc-model"
    procs = _writers("nc_save_loop.py", out, tmp_path, 80)
    codes = [p.wait(timeout=120) for p in procs]
    errors = "".join(p.stderr.read() for p in procs)
    assert codes == [0, 0], errors
    _nc_check(out, tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".nc-model.")]  # debris


# --------------------------------------------------------------------------------------------
# `thetanet nc train --checkpoint DIR --resume` (runs once the nc CLI has the options)
# --------------------------------------------------------------------------------------------

def _nc_train_has_checkpoint() -> bool:
    from thetanet.cli import build_parser

    nc = build_parser()._subparsers._group_actions[0].choices["nc"]  # type: ignore[union-attr]
    train = nc._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    return any("--checkpoint" in a.option_strings for a in train._actions)


def _nc_weights(out: Path) -> list[bytes]:
    from thetanet.compounds.system import NCClassifier

    clf = NCClassifier.load(out, cache_dir=False)
    return [w.tobytes() for m in clf.members for w in m.get_weights()] + [
        repr(clf.best_epochs).encode()]


def wait_for_checkpoint(ck: Path, rewrites: int, deadline_s: float = 120) -> None:
    """Poll (with a deadline) until a checkpoint under ``ck`` exists and, after that, has been
    replaced ``rewrites`` times (each write renames a new file over it)."""
    deadline, seen = time.monotonic() + deadline_s, set()
    while time.monotonic() < deadline:
        for path in ck.rglob(CHECKPOINT_NAME):
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                seen.add((st.st_ino, st.st_mtime_ns))
        if len(seen) > rewrites:
            return
        time.sleep(0.01)  # polling the directory, with a deadline
    raise AssertionError(f"no checkpoint (+{rewrites} rewrites) in {ck} within {deadline_s} s")


@pytest.mark.skipif(not _nc_train_has_checkpoint(), reason="nc train has no --checkpoint yet")
def test_nc_train_killed_or_interrupted_then_resumed_matches(data_root, tmp_path):
    base = [sys.executable, "-m", "thetanet.cli", "nc", "train", "--split", "fine_lexical",
            "--data-dir", str(data_root), "--cache-dir", str(tmp_path / "cache"),
            "--features", "words", "--hidden", "32", "--max-epochs", "8", "--patience", "8",
            "--ensemble", "2", "--quiet", "--json"]
    ref = subprocess.run([*base, "--out", str(tmp_path / "ref"), "--checkpoint",
                          str(tmp_path / "ck-ref")], capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr
    for sig in (signal.SIGKILL, signal.SIGINT):
        ck, out = tmp_path / f"ck-{sig.name}", tmp_path / f"out-{sig.name}"
        proc = subprocess.Popen([*base, "--out", str(out), "--checkpoint", str(ck)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # signal once a checkpoint exists (SIGKILL) or has been rewritten (SIGINT: later on)
        wait_for_checkpoint(ck, rewrites=int(sig == signal.SIGINT))
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
        if sig == signal.SIGINT:
            assert rc == 130, proc.stderr.read()
        else:
            assert rc == -signal.SIGKILL
        resumed = subprocess.run([*base, "--out", str(out), "--checkpoint", str(ck),
                                  "--resume"], capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        assert _nc_weights(out) == _nc_weights(tmp_path / "ref"), sig.name
