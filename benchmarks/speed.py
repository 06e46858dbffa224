"""Training speed on the CPU: thetanet against PyTorch eager, scikit-learn and Keras 3.

One command writes ``benchmarks/results/speed.md``::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/speed.py

(unsetting the two OpenBLAS variables lets a current NumPy pick its native kernel; the kernel in
use is reported). For every thread count (``--threads``, default 2 then 1) a fresh process fixes
the threads of every library (``threadpoolctl`` for NumPy's BLAS, ``torch.set_num_threads``,
``OMP_NUM_THREADS``, ``OMP_WAIT_POLICY=PASSIVE`` so that idle OpenMP threads do not spin), then
for each workload W1–W4 builds the same synthetic data and the same initial weights in every
framework and runs the frameworks interleaved epoch by epoch (A B C D, B C D A, …) so that machine
drift cancels. Reported: median seconds per epoch, the ratio to PyTorch eager paired per round
(median of the per-round ratios), achieved GFLOP/s and % of the measured GEMM peak, the final
loss of each framework, and the acceptance checks of issue 5.

PyTorch gets the very same batches as thetanet (the permutation thetanet's ``fit(seed=...)``
draws), so its loss must agree with thetanet's; scikit-learn and Keras shuffle with their own
generators. scikit-learn has no dropout: on W3 it trains the same net without it.

Also measured (separate processes): peak RSS of thetanet while training W2 against the budget
1.5 × (data + parameters + one batch of activations and gradients), and, with pyinstrument
installed, where thetanet's time goes (``--profile``).

Options: ``--rounds N`` timed epochs per framework (default 5, after one warm-up epoch),
``--workloads W1 W3``, ``--frameworks thetanet torch``, ``--quick`` (a tenth of the data,
2 rounds: a smoke run), ``--out FILE``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "speed.md"
FRAMEWORKS = ("thetanet", "torch", "sklearn", "keras")
SEED = 1234


@dataclass(frozen=True)
class Workload:
    name: str
    n: int
    dims: tuple[int, ...]  # input, hidden…, classes
    batch: int
    optimizer: str  # "sgd" or "adam"
    lr: float
    dropout: float = 0.0  # after every hidden layer
    note: str = ""

    @property
    def k(self) -> int:
        return self.dims[-1]

    def flops_per_epoch(self) -> float:
        """Multiply-adds ×2 of the GEMMs of one epoch: forward, weight gradients, and input
        gradients of every layer but the first."""
        pairs = list(zip(self.dims[:-1], self.dims[1:]))
        per = 2 * sum(i * o for i, o in pairs) * 2 + 2 * sum(i * o for i, o in pairs[1:])
        return float(per * self.n)

    def gemm_shapes(self) -> list[tuple[int, int, int]]:
        """(m, k, n) of the GEMMs of one step: forward, weight gradients, input gradients."""
        b = self.batch
        pairs = list(zip(self.dims[:-1], self.dims[1:]))
        fwd = [(b, i, o) for i, o in pairs]
        wgrad = [(i, b, o) for i, o in pairs]
        dgrad = [(b, o, i) for i, o in pairs[1:]]
        return fwd + wgrad + dgrad

    def describe(self) -> str:
        net = "-".join(map(str, self.dims))
        drop = f", dropout {self.dropout:g}" if self.dropout else ""
        return f"{net}{drop}, batch {self.batch}, {self.optimizer.upper()} {self.lr:g}"


WORKLOADS = {
    "W1": Workload("W1", 60_000, (784, 256, 256, 10), 128, "sgd", 0.1),
    "W2": Workload("W2", 60_000, (784, 1024, 1024, 10), 256, "sgd", 0.1),
    "W3": Workload("W3", 14_369, (768, 512, 37), 64, "adam", 1e-3, dropout=0.5),
    "W4": Workload("W4", 5_000, (784, 64, 10), 1, "sgd", 0.01),
}
TARGET = {"W1": 0.95, "W2": 1.05, "W3": 0.8, "W4": 0.4}


# -- data and weights (NumPy only) ----------------------------------------------------------------
def make_data(w: Workload, seed: int = SEED) -> tuple[Any, Any]:
    """float32 inputs ~ N(0, 1) and int64 labels from a noisy random linear teacher."""
    import numpy as np

    rng = np.random.default_rng(seed)
    d, k = w.dims[0], w.k
    x = np.empty((w.n, d), np.float32)
    for s in range(0, w.n, 4096):  # chunked: no float64 temporary of the whole set
        x[s:s + 4096] = rng.standard_normal((min(4096, w.n - s), d), dtype=np.float32)
    teacher = rng.standard_normal((d, k)).astype(np.float32) * np.float32(2 / math.sqrt(d))
    logits = x @ teacher + rng.gumbel(size=(w.n, k)).astype(np.float32)
    return x, logits.argmax(axis=1).astype(np.int64)


def thetanet_model(w: Workload) -> Any:
    from thetanet import Dense, Dropout, Sequential

    layers: list[Any] = []
    for h in w.dims[1:-1]:
        layers.append(Dense(h, "relu"))
        if w.dropout:
            layers.append(Dropout(w.dropout))
    layers.append(Dense(w.k, "softmax"))
    model = Sequential(layers, seed=0)
    opt = {"name": w.optimizer, "learning_rate": w.lr}
    model.compile(opt, "sparse_categorical_crossentropy")
    model.build(w.dims[0])
    return model


def thetanet_perm(n: int, seed: int, n_layers: int) -> Any:
    """The permutation ``Sequential.fit(seed=seed)`` shuffles with (for identical batches)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rng.spawn(n_layers)
    return rng.permutation(n)


def full_loss(weights: list[Any], x: Any, y: Any) -> float:
    """Mean cross-entropy of the net on (x, y), float64, no dropout: one judge for all."""
    import numpy as np

    total = 0.0
    for s in range(0, x.shape[0], 8192):
        a = x[s:s + 8192].astype(np.float64)
        for i in range(0, len(weights), 2):
            a = a @ weights[i].astype(np.float64) + weights[i + 1]
            if i + 2 < len(weights):
                np.maximum(a, 0, out=a)
        a -= a.max(axis=1, keepdims=True)
        lse = np.log(np.exp(a).sum(axis=1))
        total += float((lse - a[np.arange(a.shape[0]), y[s:s + 8192]]).sum())
    return total / x.shape[0]


# -- one runner per framework --------------------------------------------------------------------
class Runner:
    name = ""

    def epoch(self, r: int) -> float:
        """Train one epoch (round ``r``); return the framework's own mean training loss."""
        raise NotImplementedError

    def weights(self) -> list[Any]:
        """Kernels (in, out) and biases, alternating, as NumPy arrays."""
        raise NotImplementedError


class ThetanetRunner(Runner):
    name = "thetanet"

    def __init__(self, w: Workload, x: Any, y: Any, w0: list[Any]) -> None:
        self.w, self.x, self.y = w, x, y
        self.model = thetanet_model(w)
        self.model.set_weights(w0)

    def epoch(self, r):
        h = self.model.fit(self.x, self.y, epochs=1, batch_size=self.w.batch, seed=SEED + r,
                           verbose=0)
        return h.history["loss"][-1]

    def weights(self):
        return self.model.get_weights()


class TorchRunner(Runner):
    name = "torch"

    def __init__(self, w: Workload, x: Any, y: Any, w0: list[Any]) -> None:
        import torch
        from torch import nn

        self.torch, self.w = torch, w
        mods: list[Any] = []
        self.linears = []
        for i, (fan_in, fan_out) in enumerate(zip(w.dims[:-1], w.dims[1:])):
            lin = nn.Linear(fan_in, fan_out)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w0[2 * i].T.copy()))
                lin.bias.copy_(torch.from_numpy(w0[2 * i + 1]))
            self.linears.append(lin)
            mods.append(lin)
            if i < len(w.dims) - 2:
                mods.append(nn.ReLU())
                if w.dropout:
                    mods.append(nn.Dropout(w.dropout))
        self.net = nn.Sequential(*mods)
        self.n_layers = len(mods) - (len(w.dims) - 2)  # thetanet's layer count (ReLU fused)
        params = self.net.parameters()
        self.opt = (torch.optim.SGD(params, lr=w.lr) if w.optimizer == "sgd"
                    else torch.optim.Adam(params, lr=w.lr, eps=1e-8))
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    def epoch(self, r):
        torch, w = self.torch, self.w
        import torch.nn.functional as F

        perm = torch.from_numpy(thetanet_perm(w.n, SEED + r, self.n_layers))
        xs, ys = self.x[perm], self.y[perm]
        net, opt, b = self.net, self.opt, w.batch
        net.train()
        total = 0.0
        for s in range(0, w.n, b):
            xb, yb = xs[s:s + b], ys[s:s + b]
            loss = F.cross_entropy(net(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * xb.shape[0]
        return total / w.n

    def weights(self):
        out = []
        for lin in self.linears:
            out += [lin.weight.detach().numpy().T.copy(), lin.bias.detach().numpy().copy()]
        return out


class SklearnRunner(Runner):
    name = "sklearn"

    def __init__(self, w: Workload, x: Any, y: Any, w0: list[Any]) -> None:
        import numpy as np
        from sklearn.neural_network import MLPClassifier

        self.w, self.x, self.y = w, x, y
        kw: dict[str, Any] = dict(hidden_layer_sizes=w.dims[1:-1], activation="relu",
                                  solver=w.optimizer, alpha=0.0, batch_size=w.batch,
                                  learning_rate_init=w.lr, shuffle=True, random_state=0)
        if w.optimizer == "sgd":
            kw.update(momentum=0.0, nesterovs_momentum=False, learning_rate="constant")
        else:
            kw.update(epsilon=1e-8)
        self.clf = MLPClassifier(**kw)
        self.clf.partial_fit(x[:w.batch * 2], y[:w.batch * 2], classes=np.arange(w.k))
        self.clf.coefs_ = [a.copy() for a in w0[0::2]]
        self.clf.intercepts_ = [a.copy() for a in w0[1::2]]
        del self.clf._optimizer  # a fresh optimiser state for the copied weights

    def epoch(self, r):
        self.clf.partial_fit(self.x, self.y)
        return float(self.clf.loss_)

    def weights(self):
        out = []
        for c, b in zip(self.clf.coefs_, self.clf.intercepts_):
            out += [c.copy(), b.copy()]
        return out


class KerasRunner(Runner):
    name = "keras"

    def __init__(self, w: Workload, x: Any, y: Any, w0: list[Any]) -> None:
        import keras

        self.w, self.x, self.y = w, x, y
        layers: list[Any] = [keras.Input((w.dims[0],))]
        for h in w.dims[1:-1]:
            layers.append(keras.layers.Dense(h, activation="relu"))
            if w.dropout:
                layers.append(keras.layers.Dropout(w.dropout))
        layers.append(keras.layers.Dense(w.k))
        self.model = keras.Sequential(layers)
        self.model.set_weights(w0)
        opt = (keras.optimizers.SGD(w.lr) if w.optimizer == "sgd"
               else keras.optimizers.Adam(w.lr, epsilon=1e-8))
        self.model.compile(optimizer=opt,
                           loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def epoch(self, r):
        h = self.model.fit(self.x, self.y, batch_size=self.w.batch, epochs=1, shuffle=True,
                           verbose=0)
        return float(h.history["loss"][-1])

    def weights(self):
        return [a.copy() for a in self.model.get_weights()]


class GemmRunner(Runner):
    """Only the GEMMs of an epoch (every step's forward, weight-gradient and input-gradient
    products, on NumPy's BLAS, operands in cache): the floor no NumPy framework can beat, run
    interleaved with the frameworks so that "% of the GEMM peak" is paired per round."""

    name = "gemm"

    def __init__(self, w: Workload, x: Any, y: Any, w0: list[Any]) -> None:
        import numpy as np

        rng = np.random.default_rng(0)
        self.ops = [(rng.standard_normal((m, k), dtype=np.float32),
                     rng.standard_normal((k, n), dtype=np.float32),
                     np.empty((m, n), np.float32)) for m, k, n in w.gemm_shapes()]
        self.steps = -(-w.n // w.batch)
        self.scale = w.n / (self.steps * w.batch)  # the last batch of an epoch is smaller
        self.np = np

    def epoch(self, r):
        dot = self.np.dot
        t0 = time.perf_counter()
        for _ in range(self.steps):
            for a, b, c in self.ops:
                dot(a, b, out=c)
        self.seconds = (time.perf_counter() - t0) * self.scale
        return math.nan

    def weights(self):
        return []


RUNNERS = {"thetanet": ThetanetRunner, "torch": TorchRunner, "sklearn": SklearnRunner,
           "keras": KerasRunner}


# -- the measuring child ------------------------------------------------------------------------
def available(fw: str) -> bool:
    mod = {"thetanet": "thetanet", "torch": "torch", "sklearn": "sklearn", "keras": "keras"}[fw]
    try:
        __import__(mod)
    except Exception:  # noqa: BLE001 - optional frameworks
        return False
    return True


def gemm_peak(shapes: list[tuple[int, int, int]], seconds: float = 1.0,
              clock: Any = time.perf_counter) -> float:
    """Best GFLOP/s of NumPy's BLAS running the GEMMs ``shapes`` (m, k, n) back to back."""
    import numpy as np

    rng = np.random.default_rng(0)
    ops = []
    for m, k, n in shapes:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        ops.append((a, b, np.empty((m, n), np.float32)))
    flops = sum(2.0 * m * k * n for m, k, n in shapes)
    best = math.inf
    for a, b, c in ops:
        np.matmul(a, b, out=c)
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or best == math.inf:
        t0 = clock()
        for a, b, c in ops:
            np.matmul(a, b, out=c)
        best = min(best, clock() - t0)
    return flops / best / 1e9


def fix_threads(threads: int) -> dict[str, Any]:
    """Pin every library to ``threads`` and say what each uses."""
    import numpy  # noqa: F401 - loads the BLAS that threadpoolctl must see
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(threads)
    info: dict[str, Any] = {"blas": [f"{i['internal_api']} {i.get('version')} "
                                     f"{i.get('architecture', '')} x{i['num_threads']}"
                                     for i in threadpool_info()]}
    if available("torch"):
        import torch

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        info["torch"] = f"torch {torch.__version__} x{torch.get_num_threads()}"
    return info


def run_workload(w: Workload, frameworks: list[str], rounds: int, log: Any,
                 gemm: bool = True) -> dict[str, Any]:
    import numpy as np

    x, y = make_data(w)
    w0 = thetanet_model(w).get_weights()
    runners = [RUNNERS[fw](w, x, y, w0) for fw in frameworks]
    if gemm and w.batch > 1:
        runners.append(GemmRunner(w, x, y, w0))
    times: dict[str, list[float]] = {r.name: [] for r in runners}
    losses: dict[str, list[float]] = {r.name: [] for r in runners}
    loads: list[float] = []
    for r in runners:  # warm-up epoch (round 0), untimed
        losses[r.name].append(r.epoch(0))
    for rnd in range(1, rounds + 1):
        order = runners[rnd % len(runners):] + runners[:rnd % len(runners)]
        for r in order:
            t0 = time.perf_counter()
            loss = r.epoch(rnd)
            times[r.name].append(getattr(r, "seconds", time.perf_counter() - t0))
            losses[r.name].append(loss)
        loads.append(os.getloadavg()[0])
        log(f"  {w.name} round {rnd}: " + ", ".join(f"{k} {v[-1]:.3f}s"
                                                     for k, v in times.items())
            + f" (load {loads[-1]:.2f})")
    out: dict[str, Any] = {"workload": w.name, "frameworks": {}, "loads": loads}
    for r in runners:
        res: dict[str, Any] = {"times": times[r.name], "losses": losses[r.name],
                               "median": statistics.median(times[r.name]),
                               "full_loss": (full_loss(r.weights(), x, y) if r.weights()
                                             else math.nan)}
        if "torch" in times:
            res["ratios"] = [a / b for a, b in zip(times[r.name], times["torch"])]
            res["ratio"] = statistics.median(res["ratios"])
        out["frameworks"][r.name] = res
    del x, y, runners
    _ = np.zeros(1)
    return out


def child(args: argparse.Namespace) -> None:
    threads = args.child
    info = fix_threads(threads)
    frameworks = [fw for fw in args.frameworks if available(fw)]
    w2 = WORKLOADS["W2"]
    result: dict[str, Any] = {"threads": threads, "info": info, "frameworks": frameworks,
                              "peak_1024": gemm_peak([(1024, 1024, 1024)]),
                              "peak_w2": gemm_peak(w2.gemm_shapes()), "workloads": {}}
    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    log(f"threads {threads}: {info}; GEMM peak {result['peak_1024']:.0f} GFLOP/s (1024^3), "
        f"{result['peak_w2']:.0f} (W2 shapes)")
    for name in args.workloads:
        w = scaled(WORKLOADS[name], args.quick)
        result["workloads"][name] = run_workload(w, frameworks, args.rounds, log)
    Path(args.json).write_text(json.dumps(result))


def scaled(w: Workload, quick: bool) -> Workload:
    if not quick:
        return w
    from dataclasses import replace

    return replace(w, n=max(w.n // 10, 4 * w.batch))


# -- memory (thetanet only, its own process) -----------------------------------------------------
def _proc_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return -1


def memory_child(args: argparse.Namespace) -> None:
    import numpy  # noqa: F401 - import everything before the baseline

    from thetanet import Dense  # noqa: F401 - import everything before the baseline

    w = scaled(WORKLOADS["W2"], args.quick)
    x, y = make_data(w)  # (its GEMM also makes BLAS allocate its own per-thread buffers)
    data = x.nbytes + y.nbytes
    # The engine's footprint: the data, plus whatever the RSS grows by from here (model,
    # buffers, optimiser state, copies) up to its peak during one epoch of training.
    base = _proc_kib("VmRSS")
    try:  # reset the high-water mark: the peak of training, not of making the data
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    model = thetanet_model(w)
    model.fit(x, y, epochs=1, batch_size=w.batch, seed=SEED, verbose=0)
    peak = _proc_kib("VmHWM")
    params = sum(p.nbytes for p in model.params)
    widths = sum(w.dims[1:])
    batch_bytes = 4 * w.batch * (3 * widths + w.dims[0])  # z, a, δ per layer + input rows
    need = x.nbytes + y.nbytes + params + params + batch_bytes  # grads as large as params
    Path(args.json).write_text(json.dumps({
        "base_kib": base, "peak_kib": peak, "data": data, "params": params,
        "batch": batch_bytes + params, "need": need, "used": data + (peak - base) * 1024}))


# -- profile (pyinstrument, thetanet only) -------------------------------------------------------
def profile_child(args: argparse.Namespace) -> None:
    from pyinstrument import Profiler

    fix_threads(args.child)
    texts = {}
    for name in args.workloads:
        w = scaled(WORKLOADS[name], args.quick)
        x, y = make_data(w)
        model = thetanet_model(w)
        model.fit(x, y, epochs=1, batch_size=w.batch, seed=0, verbose=0)  # warm
        prof = Profiler(interval=0.0005)
        prof.start()
        model.fit(x, y, epochs=1, batch_size=w.batch, seed=1, verbose=0)
        prof.stop()
        texts[name] = prof.output_text(unicode=False, color=False, show_all=False,
                                       short_mode=True if hasattr(Profiler, "x") else False)
    Path(args.json).write_text(json.dumps(texts))


# -- the parent: spawn, collect, write ----------------------------------------------------------
def spawn(mode: list[str], threads: int, args: argparse.Namespace) -> Any:
    env = dict(os.environ)
    t = str(threads)
    env.update(OMP_NUM_THREADS=t, MKL_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t,
               OMP_WAIT_POLICY="PASSIVE", KERAS_BACKEND="torch", TF_CPP_MIN_LOG_LEVEL="3")
    if args.blas_timeout:  # OpenBLAS's idle threads spin 2^N cycles (default 2^28) before sleeping
        env["OPENBLAS_THREAD_TIMEOUT"] = str(args.blas_timeout)
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        path = fh.name
    cmd = [sys.executable, __file__, *mode, "--json", path, "--rounds", str(args.rounds),
           "--workloads", *args.workloads, "--frameworks", *args.frameworks]
    if args.quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, env=env, check=False)
    try:
        if proc.returncode != 0:
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
        return json.loads(Path(path).read_text())
    finally:
        os.unlink(path)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def fmt_ratio(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def render(results: list[dict[str, Any]], mem: dict[str, Any] | None,
           prof: dict[str, str] | None, args: argparse.Namespace, load: list[str],
           wall: float, when: str | None = None) -> str:
    lines = ["# Training speed: thetanet vs PyTorch eager, scikit-learn, Keras 3 (issue 5)", "",
             f"Measured by `benchmarks/speed.py` {when or time.strftime('%Y-%m-%d %H:%M')} in "
             f"{wall / 60:.1f} min. Machine: {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores; Python {platform.python_version()}; "
             f"load average (1/5/15 min) before, between and after: {'; '.join(load)}.",
             f"Rounds: {args.rounds} timed epochs per framework after one warm-up epoch, "
             "frameworks interleaved epoch by epoch (order rotated every round); float32; the "
             "same data and initial weights everywhere." + (" QUICK RUN (a tenth of the data)."
                                                           if args.quick else ""),
             "OPENBLAS_CORETYPE=" + os.environ.get("OPENBLAS_CORETYPE", "(unset)")
             + ", OPENBLAS_L2_SIZE=" + os.environ.get("OPENBLAS_L2_SIZE", "(unset)")
             + "; in every measuring process OMP_WAIT_POLICY=PASSIVE and "
             + (f"OPENBLAS_THREAD_TIMEOUT={args.blas_timeout} (idle OpenBLAS threads spin "
                f"2^{args.blas_timeout} cycles, not 2^28, before they sleep)"
                if args.blas_timeout else "OpenBLAS's default thread timeout") + ".",
             "", "Workloads (synthetic data: N(0, 1) inputs, labels of a noisy random linear "
             "teacher; ReLU hidden layers, softmax + cross-entropy):", ""]
    for name in args.workloads:
        w = scaled(WORKLOADS[name], args.quick)
        lines.append(f"- **{name}** {w.describe()}; {w.n:,} samples per epoch "
                     f"({w.flops_per_epoch() / 1e9:.1f} GFLOP of GEMMs per epoch)")
    lines.append("")
    checks: list[tuple[str, bool]] = []
    for res in results:
        t = res["threads"]
        lines += [f"## {t} thread{'s' if t > 1 else ''}", "",
                  "Threads: " + "; ".join(res["info"]["blas"])
                  + (f"; {res['info']['torch']}" if "torch" in res["info"] else "")
                  + f". Measured GEMM peak (NumPy): {res['peak_1024']:.0f} GFLOP/s on 1024³, "
                  f"{res['peak_w2']:.0f} GFLOP/s on W2's shapes. 1-minute load average "
                  "during the rounds: " + "; ".join(
                      f"{n} {min(r.get('loads') or [0]):.2f}–{max(r.get('loads') or [0]):.2f}"
                      for n, r in res["workloads"].items()) + ".", "",
                  "| workload | framework | s/epoch (median) | ÷ PyTorch (paired median) | "
                  "GFLOP/s | % of W2-shape peak | final loss (own) | final loss (full data) |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, wres in res["workloads"].items():
            w = scaled(WORKLOADS[name], args.quick)
            for fw, r in wres["frameworks"].items():
                gf = w.flops_per_epoch() / r["median"] / 1e9
                label = "its GEMMs alone (NumPy)" if fw == "gemm" else fw
                loss = ("— | —" if fw == "gemm" else
                        f"{r['losses'][-1]:.4f} | {r['full_loss']:.4f}")
                lines.append(f"| {name} | {label} | {r['median']:.3f} | "
                             f"{fmt_ratio(r.get('ratio'))} | {gf:.0f} | "
                             f"{100 * gf / res['peak_w2']:.0f}% | {loss} |")
        lines.append("")
        for name, wres in res["workloads"].items():
            fws = wres["frameworks"]
            if "thetanet" not in fws:
                continue
            me = fws["thetanet"]
            if "torch" in fws:
                ok = me["ratio"] <= TARGET[name]
                checks.append((f"{t}T {name}: thetanet ÷ PyTorch = {me['ratio']:.2f} "
                               f"≤ {TARGET[name]}", ok))
                tl, ml = fws["torch"]["losses"][-1], me["losses"][-1]
                rel = abs(ml - tl) / abs(tl)
                t1, m1 = fws["torch"]["losses"][0], me["losses"][0]
                tf, mf = fws["torch"]["full_loss"], me["full_loss"]
                checks.append((f"{t}T {name}: training loss of the last epoch {ml:.4f} vs "
                               f"PyTorch {tl:.4f} (differ by {100 * rel:.2f}% ≤ 1%; after the "
                               f"first epoch {m1:.4f} vs {t1:.4f}, "
                               f"{100 * abs(m1 - t1) / abs(t1):.2f}%; full-data loss at the "
                               f"end {mf:.4f} vs {tf:.4f}, {100 * abs(mf - tf) / abs(tf):.2f}%)",
                               rel <= 0.01))
            for other in ("sklearn", "keras"):  # (the "gemm" row is no framework)
                if other in fws:
                    sp = statistics.median(a / b for a, b in zip(fws[other]["times"],
                                                                  me["times"]))
                    checks.append((f"{t}T {name}: thetanet {sp:.2f}× faster than {other} "
                                   f"(≥ 1.5)", sp >= 1.5))
            if name == "W2":
                w = scaled(WORKLOADS[name], args.quick)
                pct = w.flops_per_epoch() / me["median"] / 1e9 / res["peak_w2"]
                text = (f"{t}T W2: thetanet at {100 * pct:.0f}% of the W2-shape GEMM peak "
                        f"measured before the rounds")
                ok = pct >= 0.9
                if "gemm" in fws:
                    paired = statistics.median(a / b for a, b in zip(fws["gemm"]["times"],
                                                                      me["times"]))
                    text += (f", {100 * paired:.1f}% of the same GEMMs timed in each round "
                             f"(paired median)")
                    ok = paired >= 0.9
                checks.append((text + " (≥ 90%)", ok))
    if mem is not None:
        mib = 1 << 20
        ok = mem["used"] <= 1.5 * mem["need"]
        lines += ["## Memory (thetanet, W2, one epoch)", "",
                  f"The data ({mem['data'] / mib:.0f} MiB) plus the growth of the RSS from "
                  f"just before the model is built to its peak during one epoch of "
                  f"training (model, buffers, optimiser state, copies; not the libraries' own "
                  f"memory): **{mem['used'] / mib:.0f} MiB**. Budget "
                  f"1.5 × (data {mem['data'] / mib:.0f} MiB + parameters "
                  f"{mem['params'] / mib:.1f} MiB + one batch of activations and gradients "
                  f"{mem['batch'] / mib:.1f} MiB) = {1.5 * mem['need'] / mib:.0f} MiB: "
                  f"{'within' if ok else 'OVER'} budget "
                  f"({mem['used'] / mem['need']:.2f} × the sum).", ""]
        checks.append((f"memory: W2 peak {mem['used'] / mib:.0f} MiB ≤ 1.5 × "
                       f"{mem['need'] / mib:.0f} MiB", ok))
    lines += ["## Acceptance checks", ""]
    lines += [f"- [{'x' if ok else ' '}] {'PASS' if ok else 'FAIL'}: {text}"
              for text, ok in checks]
    lines.append("")
    if prof:
        lines += ["## Where thetanet's time goes now (pyinstrument, 1 thread, one epoch after a "
                  "warm-up epoch)", ""]
        for name, text in prof.items():
            rows = text.strip().splitlines()
            start = next((i + 1 for i, row in enumerate(rows) if row.startswith("Profile at")),
                         0)
            body = "\n".join(row for row in rows[start:start + 60] if row.strip())
            lines += [f"### {name}", "", "```", body, "```", ""]
    return "\n".join(lines) + "\n"


def read_raw(path: Path) -> dict[str, Any]:
    """The raw results a previous run left at the end of ``path`` (or nothing)."""
    if not path.exists():
        return {}
    text = path.read_text()
    tag = "<!-- raw results (for --merge): "
    a = text.rfind(tag)
    if a < 0:
        return {}
    try:
        return json.loads(text[a + len(tag):text.rindex(" -->")])
    except ValueError:
        return {}


def keep_sections(path: Path) -> str:
    """Hand-written notes between ``<!-- keep -->`` and ``<!-- /keep -->`` survive a rerun."""
    if not path.exists():
        return ""
    text = path.read_text()
    a, b = text.find("<!-- keep -->"), text.find("<!-- /keep -->")
    return text[a:b + len("<!-- /keep -->")] + "\n" if 0 <= a < b else ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    ap.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--profile", action="store_true", help="add a pyinstrument profile")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--blas-timeout", type=int, default=0,
                    help="OPENBLAS_THREAD_TIMEOUT for the children (0: leave OpenBLAS's default)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the results of thread counts not rerun from the existing file")
    ap.add_argument("--rerender", action="store_true",
                    help="only rewrite the file from the raw results it holds (no measuring)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--profile-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        memory_child(args)
        return 0
    if args.profile_child:
        profile_child(args)
        return 0
    if args.child:
        child(args)
        return 0
    t0 = time.perf_counter()
    if args.rerender:
        old = read_raw(args.out)
        if not old:
            raise SystemExit(f"{args.out} holds no raw results to render")
        args.workloads = [n for n in WORKLOADS if n in old["results"][0]["workloads"]]
        args.rounds, args.quick = old.get("rounds", args.rounds), old.get("quick", args.quick)
        text = render(old["results"], old.get("memory"), old.get("profile"), args,
                      old.get("load", []), old.get("wall", 0.0), old.get("when"))
        raw = json.dumps(old)
        kept = keep_sections(args.out)
        args.out.write_text(text + ("\n" + kept if kept else "")
                            + f"\n<!-- raw results (for --merge): {raw} -->\n")
        return 0
    load = [loadavg()]
    results = []
    for t in args.threads:
        results.append(spawn(["--child", str(t)], t, args))
        load.append(loadavg())
    mem = None if args.no_memory else spawn(["--memory-child"], max(args.threads), args)
    prof = None
    if args.profile:
        try:
            import pyinstrument  # noqa: F401
        except ImportError:
            print("pyinstrument is not installed: no profile", file=sys.stderr)
        else:
            prof = spawn(["--profile-child", "--child", "1"], 1, args)
    old = read_raw(args.out) if args.merge else {}
    if old:
        results += [r for r in old.get("results", []) if r["threads"] not in args.threads]
        results.sort(key=lambda r: -r["threads"])
        mem = mem if mem is not None else old.get("memory")
        prof = prof if prof is not None else old.get("profile")
        load = [*old.get("load", []), *load]
    text = render(results, mem, prof, args, load, time.perf_counter() - t0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    kept = keep_sections(args.out)
    raw = json.dumps({"results": results, "memory": mem, "profile": prof, "load": load,
                      "wall": time.perf_counter() - t0, "rounds": args.rounds,
                      "when": time.strftime("%Y-%m-%d %H:%M"),
                      "quick": args.quick})
    args.out.write_text(text + ("\n" + kept if kept else "")
                        + f"\n<!-- raw results (for --merge): {raw} -->\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
