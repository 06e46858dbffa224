"""Convolutional training speed: thetanet against PyTorch eager on a LeNet-5-sized network.

One command writes ``benchmarks/results/conv_speed.md``::

    python benchmarks/conv_speed.py

Network (issue 17): 28×28×1 inputs → Conv 6@5×5 "same", ReLU → max-pool 2 → Conv 16@5×5
"valid", ReLU → max-pool 2 → flatten (400) → Dense 120 ReLU → Dense 84 ReLU → Dense 10 softmax,
cross-entropy; plain SGD (η = 0.05), batch 64, one epoch over random data of MNIST's size
(``--images``, default 8,000 U[0, 1) images, random labels), float32.

Each measurement runs in a fresh process with 2 threads everywhere (``threadpoolctl`` for
NumPy's BLAS, ``torch.set_num_threads``, ``OMP_NUM_THREADS``, ``OMP_WAIT_POLICY=PASSIVE``;
``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` unset so OpenBLAS picks its native kernel). Per
process: a warm-up of 4 batches, then one timed epoch. The frameworks alternate over
``--rounds`` rounds (order flipped every round, so machine drift cancels); the median is
reported. A last thetanet process times one more epoch with every ``np.matmul`` / ``np.dot``
call and every layer's forward / backward timed, for the GEMM share and the breakdown. Peak RSS
is ``ru_maxrss`` of each process (imports and data included) and its growth over the epoch.
For context, ``--compare-threads N`` (default 1; 0 skips) repeats the alternating rounds with N
threads per framework: on a machine whose cores are shared, how much of the gap is the cost of
waking BLAS's / OpenMP's second thread for many small products.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "conv_speed.md"
BATCH, LR, SEED = 64, 0.05, 1234


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def fix_threads(threads: int) -> str:
    import numpy  # noqa: F401 - loads the BLAS that threadpoolctl must see
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(threads)
    return ", ".join(f"{i['internal_api']} {i.get('version')} {i.get('architecture', '')} "
                     f"x{i['num_threads']}" for i in threadpool_info())


def make_data(n: int) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(SEED)
    return rng.random((n, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n)


def thetanet_model() -> Any:
    from thetanet import Dense, Sequential
    from thetanet.layers.conv2d import Conv2D
    from thetanet.layers.flatten import Flatten
    from thetanet.layers.pooling import MaxPool2D

    model = Sequential([Conv2D(6, 5, padding="same", activation="relu"), MaxPool2D(2),
                        Conv2D(16, 5, activation="relu"), MaxPool2D(2), Flatten(),
                        Dense(120, "relu"), Dense(84, "relu"), Dense(10, "softmax")], seed=SEED)
    model.compile({"name": "sgd", "learning_rate": LR}, "sparse_categorical_crossentropy")
    return model


def run_thetanet(n: int, instrument: bool) -> dict[str, Any]:
    x, y = make_data(n)
    model = thetanet_model()
    model.fit(x[:4 * BATCH], y[:4 * BATCH], epochs=1, batch_size=BATCH, seed=0, verbose=0)
    rss0 = peak_rss_mb()
    timers: dict[str, float] = {}
    if instrument:
        _instrument(model, timers)
    t0, c0 = time.perf_counter(), time.process_time()
    hist = model.fit(x, y, epochs=1, batch_size=BATCH, seed=1, verbose=0)
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": sec, "cpu": cpu, "loss": float(hist.history["loss"][-1]),
            "rss_before": rss0,
            "rss_peak": peak_rss_mb(), "timers": timers}


def _instrument(model: Any, timers: dict[str, float]) -> None:
    """Time every np.matmul / np.dot call and every layer's forward / backward (in place)."""
    import numpy as np

    clock = time.perf_counter

    def timed(fn: Any, key: str) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                timers[key] = timers.get(key, 0.0) + clock() - t
                timers[f"{key}#calls"] = timers.get(f"{key}#calls", 0) + 1
        return wrapper

    np.matmul = timed(np.matmul, "gemm")  # type: ignore[assignment]
    np.dot = timed(np.dot, "gemm")  # type: ignore[assignment]
    for i, layer in enumerate(model.layers):
        tag = f"{i}:{type(layer).__name__}"
        for name in ("forward", "backward", "forward_linear"):
            if hasattr(layer, name):
                setattr(layer, name, timed(getattr(layer, name), f"{tag}.{name}"))


def run_torch(n: int) -> dict[str, Any]:
    import numpy as np
    import torch

    torch.manual_seed(SEED)
    x, y = make_data(n)
    tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    ty = torch.from_numpy(y)
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                        nn.Linear(84, 10))
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()

    def epoch(xs: Any, ys: Any, seed: int) -> float:
        perm = torch.randperm(xs.shape[0], generator=torch.Generator().manual_seed(seed))
        total = 0.0
        for s in range(0, xs.shape[0], BATCH):
            idx = perm[s:s + BATCH]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(xs[idx]), ys[idx])
            loss.backward()
            opt.step()
            total += loss.item() * idx.shape[0]
        return total / xs.shape[0]

    epoch(tx[:4 * BATCH], ty[:4 * BATCH], 0)
    rss0 = peak_rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    loss = epoch(tx, ty, 1)
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": sec, "cpu": cpu, "loss": loss, "rss_before": rss0,
            "rss_peak": peak_rss_mb()}


def worker(args: argparse.Namespace) -> None:
    blas = fix_threads(args.threads)
    if args.worker == "torch":
        import torch

        torch.set_num_threads(args.threads)
        torch.set_num_interop_threads(1)
        res = run_torch(args.images)
        res["threads"] = f"torch {torch.__version__} x{torch.get_num_threads()}"
    else:
        res = run_thetanet(args.images, args.worker == "thetanet-instrumented")
        res["threads"] = blas
    print(json.dumps(res))


def spawn(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    t = str(args.threads)
    env.update(OMP_NUM_THREADS=t, MKL_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t,
               OMP_WAIT_POLICY="PASSIVE")
    cmd = [sys.executable, __file__, "--worker", kind, "--images", str(args.images),
           "--threads", t]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(runs: dict[str, list[dict[str, Any]]], inst: dict[str, Any], args: argparse.Namespace,
           started: float, loads: list[str],
           other: dict[str, list[dict[str, Any]]] | None = None) -> str:
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    ratios = [a["seconds"] / b["seconds"] for a, b in zip(runs["thetanet"], runs["torch"])]
    ratio = statistics.median(ratios)
    timers = inst["timers"]
    epoch = inst["seconds"]
    lines = [
        "# Convolutional training speed: thetanet vs PyTorch eager (issue 17)",
        "",
        f"Measured by `benchmarks/conv_speed.py` {time.strftime('%Y-%m-%d %H:%M')} in "
        f"{time.time() - started:.0f} s. Machine: {platform.machine()}, {os.cpu_count()} cores"
        f"; Python {platform.python_version()}. Load average (1/5/15 min) before and "
        f"after: {loads[0]}; {loads[-1]}.",
        "",
        f"LeNet-5-sized network on {args.images:,} random 28×28×1 images (MNIST's size), batch "
        f"{BATCH}, one epoch of plain SGD (η = {LR}), float32: Conv 6@5×5 same + ReLU → max-pool"
        " 2 → Conv 16@5×5 valid + ReLU → max-pool 2 → flatten 400 → Dense 120 ReLU → 84 ReLU → "
        "10 softmax. Each epoch in a fresh process with "
        f"{args.threads} threads (after a 4-batch warm-up), frameworks alternating over "
        f"{args.rounds} rounds. Threads: {runs['thetanet'][0]['threads']}; "
        f"{runs['torch'][0]['threads']}.",
        "",
        "| framework | s/epoch (median) | per round | ÷ PyTorch (paired median) | CPU s "
        "(median, all threads) | final loss | peak RSS MiB (growth in the epoch) |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in ("thetanet", "torch"):
        v = runs[k]
        per = ", ".join(f"{r['seconds']:.3f}" for r in v)
        rss = statistics.median(r["rss_peak"] for r in v)
        grow = statistics.median(r["rss_peak"] - r["rss_before"] for r in v)
        lines.append(f"| {k} | {med[k]:.3f} | {per} | "
                     f"{ratio if k == 'thetanet' else 1.0:.2f} | "
                     f"{statistics.median(r['cpu'] for r in v):.3f} | "
                     f"{statistics.median(r['loss'] for r in v):.4f} | {rss:.0f} (+{grow:.0f}) |")
    target = "met" if ratio <= 1.0 else f"NOT met (thetanet takes {ratio:.2f}× PyTorch's time)"
    lines += [
        "",
        f"Target ≤ 1.0× PyTorch eager's time: **{target}**.",
        "",
        f"## Where thetanet's epoch goes (one instrumented epoch: {epoch:.3f} s, the timers add "
        "a little overhead)",
        "",
        f"GEMMs (every `np.matmul` / `np.dot` call): {timers.get('gemm', 0.0):.3f} s = "
        f"**{100 * timers.get('gemm', 0.0) / epoch:.0f} %** of the epoch; "
        f"{timers.get('gemm#calls', 0) / -(-args.images // BATCH):.0f} BLAS calls per batch "
        "(each one a fork/join of BLAS's threads: what costs most on a loaded machine).",
        "",
        "| layer | forward s | backward s | % of epoch |",
        "|---|---|---|---|",
    ]
    inside = 0.0
    tags = sorted({k.rsplit(".", 1)[0] for k in timers if not k.startswith("gemm")},
                  key=lambda t: int(t.split(":")[0]))
    for tag in tags:
        # a hidden Dense's forward calls forward_linear; the output Dense's fused step calls
        # forward_linear alone
        fwd = timers.get(f"{tag}.forward") or timers.get(f"{tag}.forward_linear", 0.0)
        bwd = timers.get(f"{tag}.backward", 0.0)
        inside += fwd + bwd
        lines.append(f"| {tag} | {fwd:.3f} | {bwd:.3f} | {100 * (fwd + bwd) / epoch:.0f} % |")
    lines += ["", f"Outside the layers (loss, optimiser steps, batching, the fit loop): "
              f"{max(epoch - inside, 0.0):.3f} s = {100 * max(epoch - inside, 0.0) / epoch:.0f} %.",
              ""]
    if other:
        lines += [f"## For context: the same epochs with {args.compare_threads} thread(s) "
                  "each (fresh processes, alternating; not the target's setting)", "",
                  "| framework | s/epoch (median) | per round | ÷ PyTorch (paired median) | "
                  "CPU s (median) |", "|---|---|---|---|---|"]
        ratio1 = statistics.median(a["seconds"] / b["seconds"]
                                   for a, b in zip(other["thetanet"], other["torch"]))
        slower = {}
        for k in ("thetanet", "torch"):
            v = other[k]
            slower[k] = med[k] / statistics.median(r["seconds"] for r in v)
            lines.append(f"| {k} | {statistics.median(r['seconds'] for r in v):.3f} | "
                         + ", ".join(f"{r['seconds']:.3f}" for r in v)
                         + f" | {ratio1 if k == 'thetanet' else 1.0:.2f} | "
                         f"{statistics.median(r['cpu'] for r in v):.3f} |")
        why = ("on cores shared with other work, every multi-threaded product waits for its "
               "second thread to be scheduled, and thetanet's epoch is many small BLAS calls"
               if slower["thetanet"] > 1.2 else
               "small products gain little from a second thread, and each one's fork/join "
               "costs about what the second thread saves")
        lines += ["", f"With {args.threads} threads instead of {args.compare_threads}, thetanet's "
                  f"epoch took {slower['thetanet']:.2f}× as long and PyTorch's "
                  f"{slower['torch']:.2f}× (medians): {why}.", ""]
    return "\n".join(lines)


def alternate(args: argparse.Namespace, threads: int) -> dict[str, list[dict[str, Any]]]:
    """``args.rounds`` rounds of one epoch per framework, each in a fresh process, the order
    flipped every round."""
    runs: dict[str, list[dict[str, Any]]] = {"thetanet": [], "torch": []}
    for r in range(args.rounds):
        for kind in (("thetanet", "torch") if r % 2 == 0 else ("torch", "thetanet")):
            res = spawn(kind, args)
            runs[kind].append(res)
            print(f"{threads} thread(s), round {r + 1} {kind}: {res['seconds']:.3f} s",
                  file=sys.stderr)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", choices=["thetanet", "thetanet-instrumented", "torch"])
    ap.add_argument("--images", type=int, default=8000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--compare-threads", type=int, default=1,
                    help="also time both frameworks with this many threads (0 = skip)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    started = time.time()
    loads = [" ".join(f"{v:.2f}" for v in os.getloadavg())]
    runs = alternate(args, args.threads)
    inst = spawn("thetanet-instrumented", args)
    other = None
    if args.compare_threads:
        other = alternate(argparse.Namespace(**{**vars(args), "threads": args.compare_threads}),
                          args.compare_threads)
    loads.append(" ".join(f"{v:.2f}" for v in os.getloadavg()))
    text = report(runs, inst, args, started, loads, other)
    sys.path.insert(0, str(HERE.parent / "src"))
    from thetanet.files import atomic_write_text

    atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
