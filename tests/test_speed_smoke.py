"""Smoke test of benchmarks/speed.py on tiny workloads: the harness runs, the frameworks get the
same data and weights, and thetanet's loss matches PyTorch's on identical batches. No timing
assertions."""

import argparse
import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

SPEED = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"


@pytest.fixture(scope="module")
def speed():
    spec = importlib.util.spec_from_file_location("speed_bench", SPEED)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["speed_bench"] = mod
    spec.loader.exec_module(mod)
    return mod


def tiny(speed, name, **kw):
    w = speed.WORKLOADS[name]
    dims = (w.dims[0] // 16, *(max(4, h // 16) for h in w.dims[1:-1]), w.dims[-1])
    return replace(w, n=kw.pop("n", 4 * w.batch + 3 if w.batch > 1 else 40), dims=dims, **kw)


def test_flops_and_shapes(speed):
    w = speed.WORKLOADS["W2"]
    per = 2 * (784 * 1024 + 1024 * 1024 + 1024 * 10) * 2 + 2 * (1024 * 1024 + 1024 * 10)
    assert w.flops_per_epoch() == per * w.n
    shapes = w.gemm_shapes()
    assert len(shapes) == 8 and (256, 784, 1024) in shapes
    assert sum(2 * m * k * n for m, k, n in shapes) == per * w.batch


def test_data_is_deterministic_float32(speed):
    w = tiny(speed, "W1")
    x1, y1 = speed.make_data(w)
    x2, y2 = speed.make_data(w)
    assert x1.dtype == np.float32 and y1.dtype == np.int64
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert set(np.unique(y1)) <= set(range(w.k))


def test_thetanet_permutation_is_the_one_fit_uses(speed):
    w = tiny(speed, "W1", n=50)
    x, y = speed.make_data(w)
    model = speed.thetanet_model(w)
    seen = []
    real = model._forward_backward

    def spy(xb, yb, *args):
        seen.append(xb.copy())
        return real(xb, yb, *args)

    model._forward_backward = spy
    model.fit(x, y, epochs=1, batch_size=w.batch, seed=7, verbose=0)
    perm = speed.thetanet_perm(w.n, 7, len(model.layers))
    assert np.array_equal(np.concatenate(seen), x[perm])


@pytest.mark.parametrize("name", ["W1", "W3", "W4"])
def test_run_workload_thetanet_vs_torch(speed, name):
    pytest.importorskip("torch")
    w = tiny(speed, name)
    frameworks = ["thetanet", "torch"] + (["sklearn"] if speed.available("sklearn") else [])
    res = speed.run_workload(w, frameworks, rounds=2, log=lambda s: None)
    fws = res["frameworks"]
    assert set(fws) == set(frameworks) | ({"gemm"} if w.batch > 1 else set())
    for fw, r in fws.items():
        assert len(r["times"]) == 2 and len(r["losses"]) == 3 and r["median"] > 0
        assert np.isfinite(r["full_loss"]) == (fw != "gemm")
    me, th = fws["thetanet"], fws["torch"]
    assert fws["torch"]["ratio"] == 1.0
    if not w.dropout:  # the same batches, the same math: the same losses
        np.testing.assert_allclose(me["losses"], th["losses"], rtol=1e-3)
    assert me["full_loss"] == pytest.approx(th["full_loss"], rel=0.05)


def test_render_writes_checks(speed, tmp_path):
    w = tiny(speed, "W1")
    res = speed.run_workload(w, ["thetanet"], rounds=1, log=lambda s: None)
    result = {"threads": 1, "info": {"blas": ["openblas x1"]}, "peak_1024": 100.0,
              "peak_w2": 90.0, "workloads": {"W1": res}}
    mem = {"used": 10 << 20, "need": 8 << 20, "data": 6 << 20, "params": 1 << 20,
           "batch": 1 << 20}
    args = argparse.Namespace(workloads=["W1"], quick=False, rounds=1, blas_timeout=16)
    text = speed.render([result], mem, {"W1": "profile text"}, args, ["0.1 0.2 0.3"], 1.0)
    assert "| W1 | thetanet |" in text and "## Acceptance checks" in text
    assert "| W1 | its GEMMs alone (NumPy) |" in text
    assert "memory: W2 peak 10 MiB" in text and "profile text" in text


def test_training_stays_float32_and_never_copies_the_data(speed):
    import tracemalloc

    w = replace(speed.WORKLOADS["W3"], n=20000, dims=(400, 64, 7), batch=32)
    x, y = speed.make_data(w)
    model = speed.thetanet_model(w)
    model.fit(x[:64], y[:64], epochs=1, batch_size=32, verbose=0)  # buffers exist
    tracemalloc.start()
    model.fit(x, y, epochs=2, batch_size=32, seed=3, verbose=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < x.nbytes / 2, f"fit allocated {peak} bytes for {x.nbytes} bytes of data"
    arrays = model.params + model.grads + model.optimizer.m + model.optimizer.v
    for layer in model.layers:
        arrays += [a for a in vars(layer).values() if isinstance(a, np.ndarray)]
    assert arrays and all(a.dtype == np.float32 for a in arrays if a.dtype.kind == "f")


def test_online_learning_matches_torch_on_the_blas_outer_product_path(speed):
    pytest.importorskip("torch")
    w = replace(speed.WORKLOADS["W4"], n=60, dims=(100, 64, 5))  # 100·64 ≥ 4096: k = 2 GEMM
    x, y = speed.make_data(w)
    w0 = speed.thetanet_model(w).get_weights()
    ours, theirs = speed.ThetanetRunner(w, x, y, w0), speed.TorchRunner(w, x, y, w0)
    for r in range(2):
        assert ours.epoch(r) == pytest.approx(theirs.epoch(r), rel=1e-5)
    for a, b in zip(ours.weights(), theirs.weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_batch_callbacks_still_run_per_batch():
    from thetanet import Dense, Sequential
    from thetanet.callbacks import Callback

    calls = []

    class Hook(Callback):
        def on_batch_end(self, batch, logs=None):
            calls.append(("class", batch, logs["size"]))

    inst = Callback()
    inst.on_batch_end = lambda batch, logs=None: calls.append(("instance", batch, logs["size"]))
    x = np.random.default_rng(0).standard_normal((40, 3))
    model = Sequential([Dense(4, "relu"), Dense(2, "softmax")], seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(x, (x[:, 0] > 0).astype(int), epochs=1, batch_size=16, verbose=0,
              callbacks=[Hook(), inst, Callback()])
    assert calls == [(k, b, s) for b, s in enumerate((16, 16, 8)) for k in ("class", "instance")]
