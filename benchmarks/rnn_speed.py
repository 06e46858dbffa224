"""Recurrent training speed: thetanet against PyTorch eager (and Keras 3) on a word-level
language model.

One command writes ``benchmarks/results/rnn_speed.md``::

    python benchmarks/rnn_speed.py

Network (issue 25): ids (64, 32) → Embedding(10,000, 128) → LSTM(256, return_sequences) →
Dense(10,000) softmax at every step, sparse cross-entropy over the 64·32 next-token targets,
Adam (η = 0.001), float32; one epoch over ``--sequences`` random sequences (default 1,024:
16 batches). GRU and SimpleRNN in the LSTM's place are timed too, and Keras 3 (torch backend)
with the LSTM (``--keras-cells`` for more).

Each measurement runs in a fresh process with its framework's default threads (nothing is
pinned: NumPy's BLAS and torch pick their own). Per process: a warm-up of 2 batches, then one
timed epoch (shuffled). The processes alternate frameworks within each of ``--rounds`` rounds
(order flipped every round, so machine drift cancels); the median is reported. The machine is
named from /proc/cpuinfo, with the load average before and after: timings on a shared machine
say little, the lead re-runs this on a quiet one.
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
OUT = HERE / "results" / "rnn_speed.md"
VOCAB, WIDTH, UNITS, STEPS, BATCH, LR, SEED = 10_000, 128, 256, 32, 64, 1e-3, 1234
CELLS = ("lstm", "gru", "simple_rnn")


def make_data(n: int) -> tuple[Any, Any]:
    """A random token stream cut into n sequences; the targets are the next tokens."""
    import numpy as np

    stream = np.random.default_rng(SEED).integers(1, VOCAB, n * (STEPS + 1))
    seqs = stream.reshape(n, STEPS + 1)
    return seqs[:, :-1].copy(), seqs[:, 1:].copy()


def run_thetanet(cell: str, n: int) -> dict[str, Any]:
    from thetanet import GRU, LSTM, Dense, Embedding, Sequential, SimpleRNN

    x, y = make_data(n)
    rnn = {"lstm": LSTM, "gru": GRU, "simple_rnn": SimpleRNN}[cell]
    model = Sequential([Embedding(VOCAB, WIDTH), rnn(UNITS, return_sequences=True),
                        Dense(VOCAB, "softmax")], seed=SEED)
    model.compile({"name": "adam", "learning_rate": LR}, "sparse_categorical_crossentropy")
    model.fit(x[:2 * BATCH], y[:2 * BATCH], epochs=1, batch_size=BATCH, verbose=0, seed=0)
    t0, c0 = time.perf_counter(), time.process_time()
    hist = model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0, seed=1)
    return {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0,
            "loss": float(hist.history["loss"][-1]), "threads": _blas_threads()}


def _blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "?"
    return ", ".join(f"{i['internal_api']} x{i['num_threads']}" for i in threadpool_info())


def run_torch(cell: str, n: int) -> dict[str, Any]:
    import torch

    torch.manual_seed(SEED)
    x, y = (torch.from_numpy(a) for a in make_data(n))
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "simple_rnn": torch.nn.RNN}[cell]

    class LM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(VOCAB, WIDTH)
            self.rnn = rnn(WIDTH, UNITS, batch_first=True)
            self.out = torch.nn.Linear(UNITS, VOCAB)

        def forward(self, ids: Any) -> Any:
            return self.out(self.rnn(self.emb(ids))[0])

    model = LM()
    opt = torch.optim.Adam(model.parameters(), lr=LR)

    def epoch(xs: Any, ys: Any, perm: Any) -> float:
        total = 0.0
        for s in range(0, xs.shape[0], BATCH):
            idx = perm[s:s + BATCH]
            opt.zero_grad()
            logits = model(xs[idx])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB),
                                                     ys[idx].reshape(-1))
            loss.backward()
            opt.step()
            total += loss.item() * idx.shape[0]
        return total / xs.shape[0]

    epoch(x[:2 * BATCH], y[:2 * BATCH], torch.arange(2 * BATCH))
    t0, c0 = time.perf_counter(), time.process_time()
    loss = epoch(x, y, torch.randperm(x.shape[0]))
    return {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0,
            "loss": loss, "threads": f"torch x{torch.get_num_threads()}"}


def run_keras(cell: str, n: int) -> dict[str, Any]:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    keras.utils.set_random_seed(SEED)
    x, y = make_data(n)
    rnn = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU,
           "simple_rnn": keras.layers.SimpleRNN}[cell]
    model = keras.Sequential([keras.Input((STEPS,), dtype="int32"),
                              keras.layers.Embedding(VOCAB, WIDTH),
                              rnn(UNITS, return_sequences=True),
                              keras.layers.Dense(VOCAB, activation="softmax")])
    model.compile(keras.optimizers.Adam(LR), "sparse_categorical_crossentropy")
    model.fit(x[:2 * BATCH], y[:2 * BATCH], batch_size=BATCH, epochs=1, verbose=0)
    t0, c0 = time.perf_counter(), time.process_time()
    hist = model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=True)
    return {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0,
            "loss": float(hist.history["loss"][-1]),
            "threads": f"keras {keras.__version__} ({keras.backend.backend()})"}


RUNNERS = {"thetanet": run_thetanet, "torch": run_torch, "keras": run_keras}


def child(framework: str, cell: str, n: int) -> dict[str, Any]:
    """One measurement in a fresh process (this script with ``--child``)."""
    cmd = [sys.executable, __file__, "--child", framework, cell, "--sequences", str(n)]
    env = dict(os.environ)
    src = str(HERE.parent / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> str:
    model, cores = "unknown CPU", 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            cores += line.startswith("processor")
    except OSError:
        pass
    return f"{model}, {cores} logical CPUs, {platform.system()} {platform.release()}"


def load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sequences", type=int, default=1024, help="sequences per epoch (1024)")
    p.add_argument("--rounds", type=int, default=1, help="alternating rounds (1)")
    p.add_argument("--cells", default=",".join(CELLS), help="cells for thetanet and torch")
    p.add_argument("--keras-cells", default="lstm", help="cells for Keras ('' = none)")
    p.add_argument("--child", nargs=2, metavar=("FRAMEWORK", "CELL"), help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(OUT), help="the Markdown file to write")
    args = p.parse_args()
    if args.child:
        print(json.dumps(RUNNERS[args.child[0]](args.child[1], args.sequences)))
        return 0
    plan = [(fw, c) for c in args.cells.split(",") if c for fw in ("thetanet", "torch")]
    plan += [("keras", c) for c in args.keras_cells.split(",") if c]
    before = load()
    results: dict[tuple[str, str], list[dict[str, Any]]] = {k: [] for k in plan}
    for r in range(args.rounds):
        for key in (plan if r % 2 == 0 else plan[::-1]):
            res = child(*key, args.sequences)
            results[key].append(res)
            print(f"round {r + 1}: {key[0]} {key[1]}: {res}", file=sys.stderr, flush=True)
    write(args, results, before)
    return 0


def write(args: Any, results: dict[tuple[str, str], list[dict[str, Any]]],
          before: str) -> None:
    def median(key: tuple[str, str]) -> float | None:
        secs = [r["seconds"] for r in results.get(key, []) if "seconds" in r]
        return statistics.median(secs) if secs else None

    lines = [
        "# Recurrent training speed: thetanet vs PyTorch eager (and Keras 3)", "",
        "Written by `benchmarks/rnn_speed.py` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"- Machine: {machine()}; load average before {before}, after {load()}",
        f"- Python {platform.python_version()}; each run a fresh process with its "
        "framework's default threads",
        f"- Model: Embedding({VOCAB:,}, {WIDTH}) → RNN({UNITS}, return_sequences) → "
        f"Dense({VOCAB:,}) softmax, sparse cross-entropy, Adam η = {LR}, float32",
        f"- One epoch: {args.sequences:,} sequences of {STEPS} steps, batch {BATCH} "
        f"({args.sequences // BATCH} steps), after a 2-batch warm-up; median of "
        f"{args.rounds} round(s)", "",
        "| cell | framework | s / epoch | CPU s | vs torch | last loss | threads |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for (fw, cell), runs in results.items():
        sec, ref = median((fw, cell)), median(("torch", cell))
        ok = [r for r in runs if "seconds" in r]
        if sec is None or not ok:
            lines.append(f"| {cell} | {fw} | failed: {runs[-1].get('error')} | | | | |")
            continue
        last = ok[-1]
        ratio = f"{sec / ref:.2f}×" if ref else "–"
        lines.append(f"| {cell} | {fw} | {sec:.2f} | {last['cpu']:.2f} | {ratio} | "
                     f"{last['loss']:.4f} | {last['threads']} |")
    lines += ["", "The acceptance check (issue 25): thetanet's LSTM epoch ≤ 1.0× PyTorch "
              "eager's on the same machine. On a machine shared with other jobs the wall "
              "times swing with the load (see the load averages); the CPU seconds are the "
              "steadier comparison.", ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.out).with_suffix(".tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    tmp.replace(args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
