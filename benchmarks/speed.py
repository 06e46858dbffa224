"""Training speed on the CPU: thetanet against PyTorch (eager and torch.compile), scikit-learn
and Keras 3, each framework in its own process with its default thread settings.

One command writes ``benchmarks/results/speed.md``::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/speed.py

(unsetting the two OpenBLAS variables lets a current NumPy pick its native kernel). Every
framework runs in a worker process of its own, started once, with the library defaults a user
gets (no thread pinning, no ``OMP_WAIT_POLICY``): NumPy's BLAS threads and PyTorch's OpenMP
threads never share a process. For each workload W1–W4 every worker builds the same synthetic
data and the same initial weights (sent by the parent); the parent then asks one worker at a
time for one epoch, interleaved by round (A B C D, B C D A, …) so that machine drift cancels,
after a short settle pause so that the previous worker's idle threads have gone to sleep; idle
workers block on a pipe. Each epoch is timed inside its worker. Reported: median seconds per
epoch, the ratio to PyTorch eager paired per round (median of the per-round ratios), GFLOP/s and
% of NumPy's GEMM peak, the final loss of each framework, and the acceptance checks.

PyTorch (eager and compiled) gets the very same batches as thetanet (the permutation thetanet's
``fit(seed=...)`` draws), so its loss must agree with thetanet's; scikit-learn and Keras shuffle
with their own generators. scikit-learn has no dropout: on W3 it trains the same net without it.

``--thetanet-src DIR`` adds a second thetanet, "thetanet-before", imported from DIR (e.g. the
source tree of an earlier commit) and measured in the same rounds; the report compares the two
(ratio to PyTorch within 5 % of before's). The "thetanet" entry is always this tree's ``src``.

Also measured (separate processes): peak RSS of thetanet while training W2 against the budget
1.5 × (data + parameters + one batch of activations and gradients), and, with pyinstrument
installed, where thetanet's time goes (``--profile``).

Options: ``--rounds N`` timed epochs per framework (default 5, after one warm-up epoch),
``--workloads W1 W3``, ``--frameworks thetanet torch``, ``--threads N`` (pin every worker to N
threads instead of the defaults), ``--quick`` (a fiftieth of the data, 1 round: a smoke run),
``--out FILE``, ``--rerender``.
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
OUT = HERE / "results" / "speed.md"
FRAMEWORKS = ("thetanet", "torch", "torch.compile", "sklearn", "keras")
SEED = 1234
BEFORE = "thetanet-before"


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


class TorchCompileRunner(TorchRunner):
    """PyTorch with ``torch.compile`` (default mode; compiled during the warm-up epoch)."""

    name = "torch.compile"

    def __init__(self, w: Workload, x: Any, y: Any, w0: list[Any]) -> None:
        super().__init__(w, x, y, w0)
        self.net = self.torch.compile(self.net)


RUNNERS: dict[str, Any] = {"thetanet": ThetanetRunner, "torch": TorchRunner,
                           "torch.compile": TorchCompileRunner, "sklearn": SklearnRunner,
                           "keras": KerasRunner, "gemm": GemmRunner}
MODULES = {"thetanet": "thetanet", "torch": "torch", "torch.compile": "torch",
           "sklearn": "sklearn", "keras": "keras", "gemm": "numpy"}


def available(fw: str) -> bool:
    try:
        __import__(MODULES[fw])
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


# -- interleaved rounds (in this process for the tests, or over worker processes) -------------
def interleave(runners: list[Any], w: Workload, rounds: int, log: Any,
               settle: float = 0.0) -> dict[str, Any]:
    """One warm-up epoch each, then ``rounds`` timed epochs, the order rotated every round.
    A worker that fails its warm-up (e.g. torch.compile without a compiler) is left out and
    named in ``errors``."""
    losses: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    for r in list(runners):  # warm-up epoch (round 0), untimed
        try:
            losses[r.name] = [r.epoch(0)]
        except RuntimeError as exc:
            if not isinstance(r, Worker):
                raise
            errors[r.name] = str(exc)
            log(f"  {exc}")
            runners = [k for k in runners if k is not r]
    times: dict[str, list[float]] = {r.name: [] for r in runners}
    loads: list[float] = []
    for rnd in range(1, rounds + 1):
        order = runners[rnd % len(runners):] + runners[:rnd % len(runners)]
        for r in order:
            if settle:
                time.sleep(settle)  # the previous worker's spinning threads go idle
            t0 = time.perf_counter()
            loss = r.epoch(rnd)
            times[r.name].append(getattr(r, "seconds", None) or time.perf_counter() - t0)
            losses[r.name].append(loss)
        loads.append(os.getloadavg()[0])
        log(f"  {w.name} round {rnd}: " + ", ".join(f"{k} {v[-1]:.3f}s"
                                                     for k, v in times.items())
            + f" (load {loads[-1]:.2f})")
    out: dict[str, Any] = {"workload": w.name, "frameworks": {}, "loads": loads,
                           "errors": errors}
    for r in runners:
        res: dict[str, Any] = {"times": times[r.name], "losses": losses[r.name],
                               "median": statistics.median(times[r.name]),
                               "full_loss": r.final_loss()}
        if "torch" in times:
            res["ratios"] = [a / b for a, b in zip(times[r.name], times["torch"])]
            res["ratio"] = statistics.median(res["ratios"])
        out["frameworks"][r.name] = res
    return out


class _Local:
    """A runner in this process, with the worker interface (epoch, final_loss)."""

    def __init__(self, runner: Runner, x: Any, y: Any) -> None:
        self.runner, self.name, self.x, self.y = runner, runner.name, x, y

    def epoch(self, r: int) -> float:
        self.runner.__dict__.pop("seconds", None)
        loss = self.runner.epoch(r)
        self.seconds = getattr(self.runner, "seconds", None)
        return loss

    def final_loss(self) -> float:
        weights = self.runner.weights()
        return full_loss(weights, self.x, self.y) if weights else math.nan


def run_workload(w: Workload, frameworks: list[str], rounds: int, log: Any,
                 gemm: bool = True) -> dict[str, Any]:
    """All ``frameworks`` in this process, interleaved (the tests' quick path; the benchmark
    itself runs each framework in its own worker, see :func:`measure`)."""
    x, y = make_data(w)
    w0 = thetanet_model(w).get_weights()
    names = [*frameworks, *(["gemm"] if gemm and w.batch > 1 else [])]
    runners = [_Local(RUNNERS[fw](w, x, y, w0), x, y) for fw in names]
    return interleave(runners, w, rounds, log)


# -- worker processes ---------------------------------------------------------------------------
def thread_info() -> str:
    """The threads this process's libraries use (their defaults unless pinned by env)."""
    parts = []
    try:
        import numpy  # noqa: F401 - loads the BLAS that threadpoolctl must see
        from threadpoolctl import threadpool_info

        parts += [" ".join(str(v) for v in (i["internal_api"], i.get("version"),
                                            i.get("architecture"), f"x{i['num_threads']}")
                           if v) for i in threadpool_info()]
    except ImportError:
        parts.append("(threadpoolctl not installed)")
    torch = sys.modules.get("torch")
    if torch is not None:
        parts.append(f"torch {torch.__version__} x{torch.get_num_threads()}")
    return "; ".join(parts)


def worker(fw: str) -> None:
    """Serve one framework: JSON requests on stdin, one JSON reply per line on the original
    stdout (the libraries' own prints are sent to stderr instead)."""
    import numpy as np

    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    state: dict[str, Any] = {}

    def reply(**kw: Any) -> None:
        proto.write(json.dumps(kw) + "\n")

    for line in sys.stdin:
        msg = json.loads(line)
        try:
            if msg["op"] == "setup":
                state.clear()  # the previous workload's data goes first
                spec = msg["workload"]
                w = Workload(**{**spec, "dims": tuple(spec["dims"])})
                x, y = make_data(w)
                with np.load(msg["w0"], allow_pickle=False) as z:
                    w0 = [z[f"arr_{i}"] for i in range(len(z.files))]
                state.update(runner=RUNNERS[fw](w, x, y, w0), x=x, y=y)
                info = thread_info()
                if fw == "thetanet":
                    import thetanet

                    info = f"thetanet from {Path(thetanet.__file__).parent}; {info}"
                reply(ok=True, info=info)
            elif msg["op"] == "epoch":
                runner = state["runner"]
                runner.__dict__.pop("seconds", None)
                t0 = time.perf_counter()
                loss = runner.epoch(msg["round"])
                reply(ok=True, loss=loss,
                      seconds=getattr(runner, "seconds", None) or time.perf_counter() - t0)
            elif msg["op"] == "final_loss":
                weights = state["runner"].weights()
                reply(ok=True, loss=full_loss(weights, state["x"], state["y"]) if weights
                      else math.nan)
            elif msg["op"] == "peak":
                secs = msg.get("seconds", 1.0)
                reply(ok=True, peak_1024=gemm_peak([(1024, 1024, 1024)], secs),
                      peak_w2=gemm_peak(WORKLOADS["W2"].gemm_shapes(), secs),
                      info=thread_info())
            else:
                return
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which drops us
            text = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            reply(ok=False, error=text)


class Worker:
    """The parent's handle on one worker process (the runner interface: epoch, final_loss)."""

    def __init__(self, name: str, fw: str, env: dict[str, str]) -> None:
        self.name, self.fw, self.info = name, fw, ""
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker",
                                      fw], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)

    def call(self, **msg: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name}: the worker exited ({self.proc.wait()})")
        answer = json.loads(line)
        if not answer.pop("ok"):
            raise RuntimeError(f"{self.name}: {answer['error']}")
        return answer

    def setup(self, w: Workload, w0_path: str) -> None:
        self.info = self.call(op="setup", workload=asdict(w), w0=w0_path)["info"]

    def epoch(self, r: int) -> float:
        answer = self.call(op="epoch", round=r)
        self.seconds = answer["seconds"]
        return answer["loss"]

    def final_loss(self) -> float:
        return self.call(op="final_loss")["loss"]

    def close(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def worker_env(src: Path | None, threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("KERAS_BACKEND", "torch")  # Keras 3 needs a backend: the one installed here
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    if threads:
        t = str(threads)
        env.update(OMP_NUM_THREADS=t, MKL_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t)
    return env


def entries(args: argparse.Namespace) -> list[tuple[str, str, Path | None]]:
    """(name, framework, thetanet source tree) of every worker to start."""
    out: list[tuple[str, str, Path | None]] = []
    for fw in args.frameworks:
        if fw == "thetanet":
            out.append(("thetanet", "thetanet", SRC))
            if args.thetanet_src:
                out.append((BEFORE, "thetanet", Path(args.thetanet_src).resolve()))
        elif available(fw):
            out.append((fw, fw, None))
        else:
            print(f"{fw} is not installed: skipped", file=sys.stderr)
    if not args.no_gemm:
        out.append(("gemm", "gemm", None))
    return out


def measure(args: argparse.Namespace, threads: int | None, log: Any) -> dict[str, Any]:
    """Every workload, each framework in its own worker process, interleaved by round."""
    import numpy as np

    sys.path.insert(0, str(SRC))  # this tree's thetanet draws the initial weights
    workers = [Worker(name, fw, worker_env(src, threads)) for name, fw, src in entries(args)]
    result: dict[str, Any] = {"threads": threads or "default", "info": {}, "peak_1024": None,
                              "peak_w2": None, "workloads": {}, "errors": {}}
    try:
        gemm = next((wk for wk in workers if wk.name == "gemm"), None)
        if gemm is not None:
            peaks = gemm.call(op="peak", seconds=0.2 if args.quick else 1.0)
            result.update(peak_1024=peaks["peak_1024"], peak_w2=peaks["peak_w2"])
            log(f"NumPy GEMM peak {peaks['peak_1024']:.0f} GFLOP/s (1024³), "
                f"{peaks['peak_w2']:.0f} (W2 shapes); {peaks['info']}")
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.workloads:
                w = scaled(WORKLOADS[name], args.quick)
                w0_path = str(Path(tmp) / f"{name}-w0.npz")
                np.savez(w0_path, *thetanet_model(w).get_weights())
                ready = []
                for wk in workers:
                    if wk.name == "gemm" and w.batch == 1:
                        continue  # one-sample GEMMs measure nothing useful
                    try:
                        wk.setup(w, w0_path)
                    except RuntimeError as exc:
                        result["errors"][f"{name} {wk.name}"] = str(exc)
                        log(f"  {exc}")
                        continue
                    result["info"].setdefault(wk.name, wk.info)
                    ready.append(wk)
                log(f"{name}: {w.describe()}, {w.n} samples; " + ", ".join(wk.name
                                                                           for wk in ready))
                res = interleave(ready, w, args.rounds, log, settle=args.settle)
                result["errors"].update({f"{name} {k}": v for k, v in res.pop("errors").items()})
                result["workloads"][name] = res
    finally:
        for wk in workers:
            wk.close()
    return result


def scaled(w: Workload, quick: bool) -> Workload:
    if not quick:
        return w
    from dataclasses import replace

    return replace(w, n=max(w.n // 50, 4 * w.batch))


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
        texts[name] = prof.output_text(unicode=False, color=False, show_all=False)
    Path(args.json).write_text(json.dumps(texts))


def spawn(mode: list[str], args: argparse.Namespace) -> Any:
    """Run this script in ``mode`` in a fresh process (this tree's thetanet); its JSON."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        path = fh.name
    cmd = [sys.executable, __file__, *mode, "--json", path, "--workloads", *args.workloads]
    if args.quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, env=worker_env(SRC, None), check=False)
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


# -- the report ---------------------------------------------------------------------------------
def fmt(v: float | None, spec: str = ".2f") -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def paired(a: list[float], b: list[float]) -> float:
    """Median over rounds of a[r] / b[r]."""
    return statistics.median(x / y for x, y in zip(a, b))


def _block_title(t: Any) -> str:
    if t == "default":
        return "Library default threads (each framework in its own process, as users run it)"
    plural = "s" if t != 1 else ""
    return f"{t} thread{plural} (every worker pinned by OMP/MKL/OPENBLAS_NUM_THREADS)"


def _info_text(info: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {', '.join(v) if isinstance(v, list) else v}"
                     for k, v in info.items())


def _checks(res: dict[str, Any], args: argparse.Namespace) -> list[tuple[str, bool]]:
    t = res["threads"]
    tag = "" if t == "default" else f"{t}T "
    checks: list[tuple[str, bool]] = []
    for name, wres in res["workloads"].items():
        fws = wres["frameworks"]
        if "thetanet" not in fws:
            continue
        me = fws["thetanet"]
        if "torch" in fws:
            checks.append((f"{tag}{name}: thetanet ÷ PyTorch eager = {me['ratio']:.2f} "
                           f"≤ {TARGET[name]}", me["ratio"] <= TARGET[name]))
            tl, ml = fws["torch"]["losses"][-1], me["losses"][-1]
            rel = abs(ml - tl) / abs(tl)
            checks.append((f"{tag}{name}: training loss of the last epoch {ml:.4f} vs PyTorch "
                           f"{tl:.4f} (differ by {100 * rel:.2f}% ≤ 1%; full-data loss at the "
                           f"end {fmt(me['full_loss'], '.4f')} vs "
                           f"{fmt(fws['torch']['full_loss'], '.4f')})", rel <= 0.01))
        for other in ("sklearn", "keras"):
            if other in fws:
                sp = paired(fws[other]["times"], me["times"])
                checks.append((f"{tag}{name}: thetanet {sp:.2f}× faster than {other} (≥ 1.5)",
                               sp >= 1.5))
        if name == "W2" and "gemm" in fws:
            pct = paired(fws["gemm"]["times"], me["times"])
            checks.append((f"{tag}W2: thetanet at {100 * pct:.1f}% of the rate of its GEMMs "
                           f"alone timed in the same rounds (paired median; ≥ 90%)", pct >= 0.9))
        if BEFORE in fws:
            before = fws[BEFORE]
            direct = paired(me["times"], before["times"])
            if "torch" in fws:
                change = me["ratio"] / before["ratio"] - 1
                checks.append((f"{tag}{name}: thetanet ÷ PyTorch {me['ratio']:.3f} vs "
                               f"{before['ratio']:.3f} before ({100 * change:+.1f}%; ≤ +5%); "
                               f"thetanet ÷ thetanet-before {direct:.3f} (paired median)",
                               change <= 0.05))
            else:
                checks.append((f"{tag}{name}: thetanet ÷ thetanet-before {direct:.3f} (paired "
                               "median; ≤ 1.05)", direct <= 1.05))
    return checks


def _summary(res: dict[str, Any]) -> list[str]:
    """The claims the README may state, one line per workload, from this run."""
    out = []
    for name, wres in res["workloads"].items():
        fws = wres["frameworks"]
        if "thetanet" not in fws:
            continue
        me = fws["thetanet"]["times"]
        parts = [f"{paired(fws[o]['times'], me):.2f}× {label}" for o, label in
                 (("torch", "PyTorch eager"), ("torch.compile", "torch.compile"),
                  ("sklearn", "scikit-learn"), ("keras", "Keras"), (BEFORE, "thetanet-before"))
                 if o in fws]
        if parts:
            out.append(f"- **{name}**: thetanet's epoch is faster than (time of the other ÷ "
                       f"thetanet's, paired median): " + ", ".join(parts))
    return out


def render(results: list[dict[str, Any]], mem: dict[str, Any] | None,
           prof: dict[str, str] | None, args: argparse.Namespace, load: list[str],
           wall: float, when: str | None = None) -> str:
    settle = getattr(args, "settle", 0.0)
    lines = ["# Training speed: thetanet vs PyTorch eager, torch.compile, scikit-learn, Keras 3",
             "", f"Measured by `benchmarks/speed.py` {when or time.strftime('%Y-%m-%d %H:%M')} in "
             f"{wall / 60:.1f} min. Machine: {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores; Python {platform.python_version()}; "
             f"load average (1/5/15 min) before, between and after: {'; '.join(load)}.",
             "Every framework ran in its own worker process with its library defaults for "
             "threads, as users run it (no pinning, no OMP_WAIT_POLICY); only one worker "
             "computed at a time. "
             f"Rounds: {args.rounds} timed epochs per framework after one warm-up epoch, "
             f"interleaved by round (order rotated every round), a {settle:g} s pause before "
             "each epoch; float32; the same data and initial weights everywhere."
             + (" QUICK RUN (a fiftieth of the data)." if args.quick else ""),
             "OPENBLAS_CORETYPE=" + os.environ.get("OPENBLAS_CORETYPE", "(unset)")
             + ", OPENBLAS_L2_SIZE=" + os.environ.get("OPENBLAS_L2_SIZE", "(unset)") + ".",
             "", "Workloads (synthetic data: N(0, 1) inputs, labels of a noisy random linear "
             "teacher; ReLU hidden layers, softmax + cross-entropy):", ""]
    for name in args.workloads:
        w = scaled(WORKLOADS[name], args.quick)
        lines.append(f"- **{name}** {w.describe()}; {w.n:,} samples per epoch "
                     f"({w.flops_per_epoch() / 1e9:.1f} GFLOP of GEMMs per epoch)")
    lines.append("")
    checks: list[tuple[str, bool]] = []
    for res in results:
        peak = res.get("peak_w2")
        lines += [f"## {_block_title(res['threads'])}", "",
                  "Threads: " + _info_text(res["info"]) + "."
                  + (f" NumPy GEMM peak: {res['peak_1024']:.0f} GFLOP/s on 1024³, {peak:.0f} "
                     f"GFLOP/s on W2's shapes." if peak else "")
                  + " 1-minute load average during the rounds: " + "; ".join(
                      f"{n} {min(r.get('loads') or [0]):.2f}–{max(r.get('loads') or [0]):.2f}"
                      for n, r in res["workloads"].items()) + ".", "",
                  "| workload | framework | s/epoch (median) | ÷ PyTorch eager (paired median) "
                  "| GFLOP/s | % of W2-shape GEMM peak | final loss (own) | final loss (full "
                  "data) |", "|---|---|---|---|---|---|---|---|"]
        for name, wres in res["workloads"].items():
            w = scaled(WORKLOADS[name], args.quick)
            for fw, r in wres["frameworks"].items():
                gf = w.flops_per_epoch() / r["median"] / 1e9
                label = "its GEMMs alone (NumPy)" if fw == "gemm" else fw
                loss = ("— | —" if fw == "gemm" else
                        f"{fmt(r['losses'][-1], '.4f')} | {fmt(r['full_loss'], '.4f')}")
                lines.append(f"| {name} | {label} | {r['median']:.3f} | "
                             f"{fmt(r.get('ratio'))} | {gf:.0f} | "
                             f"{f'{100 * gf / peak:.0f}%' if peak else '—'} | {loss} |")
        lines.append("")
        if res.get("errors"):
            lines += ["Not measured: " + "; ".join(f"{k} ({v})" for k, v in
                                                  res["errors"].items()), ""]
        summary = _summary(res)
        if summary:
            lines += ["Summary (the speed claims this run supports):", "", *summary, ""]
        checks += _checks(res, args)
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
        lines += ["## Where thetanet's time goes (pyinstrument, default threads, one epoch "
                  "after a warm-up epoch)", ""]
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
    tag = "<!-- raw results: "
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


def write_report(path: Path, text: str, raw: dict[str, Any]) -> None:
    sys.path.insert(0, str(SRC))
    from thetanet.files import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    kept = keep_sections(path)
    atomic_write_text(path, text + ("\n" + kept if kept else "")
                      + f"\n<!-- raw results: {json.dumps(raw)} -->\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=None,
                    help="timed epochs per framework (default 5; 1 with --quick)")
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    ap.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    ap.add_argument("--thetanet-src", metavar="DIR", default=None,
                    help=f"also measure the thetanet imported from DIR as {BEFORE!r}")
    ap.add_argument("--threads", type=int, nargs="+", default=[],
                    help="also run with every worker pinned to N threads (default: only the "
                         "libraries' default threads)")
    ap.add_argument("--settle", type=float, default=0.3,
                    help="seconds of pause before each timed epoch (default 0.3)")
    ap.add_argument("--quick", action="store_true", help="a fiftieth of the data, 1 round")
    ap.add_argument("--profile", action="store_true", help="add a pyinstrument profile")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-gemm", action="store_true", help="skip the GEMMs-alone reference")
    ap.add_argument("--rerender", action="store_true",
                    help="only rewrite the file from the raw results it holds (no measuring)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--worker", choices=list(RUNNERS), help=argparse.SUPPRESS)
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--profile-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 5)
    if args.worker:
        worker(args.worker)
        return 0
    if args.memory_child:
        memory_child(args)
        return 0
    if args.profile_child:
        profile_child(args)
        return 0
    if args.rerender:
        old = read_raw(args.out)
        if not old:
            raise SystemExit(f"{args.out} holds no raw results to render")
        args.workloads = [n for n in WORKLOADS if n in old["results"][0]["workloads"]]
        args.rounds, args.quick = old["rounds"], old["quick"]
        args.settle = old.get("settle", args.settle)
        write_report(args.out, render(old["results"], old.get("memory"), old.get("profile"),
                                      args, old["load"], old["wall"], old.get("when")), old)
        return 0
    if args.thetanet_src and not (Path(args.thetanet_src) / "thetanet" / "__init__.py").is_file():
        raise SystemExit(f"--thetanet-src {args.thetanet_src}: no thetanet/__init__.py there")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    load = [loadavg()]
    results = []
    for threads in [None, *args.threads]:
        results.append(measure(args, threads, log))
        load.append(loadavg())
    mem = None if args.no_memory else spawn(["--memory-child"], args)
    prof = None
    if args.profile:
        try:
            import pyinstrument  # noqa: F401
        except ImportError:
            print("pyinstrument is not installed: no profile", file=sys.stderr)
        else:
            prof = spawn(["--profile-child"], args)
    wall = time.perf_counter() - t0
    when = time.strftime("%Y-%m-%d %H:%M")
    text = render(results, mem, prof, args, load, wall, when)
    write_report(args.out, text, {"results": results, "memory": mem, "profile": prof,
                                  "load": load, "wall": wall, "rounds": args.rounds,
                                  "when": when, "quick": args.quick, "settle": args.settle})
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
