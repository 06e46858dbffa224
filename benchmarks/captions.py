"""From images to text: train the captioner with and without attention, evaluate both, and
write benchmarks/results/captions.md (and docs/captions_attention.png).

Each model is trained by the command a user runs, ``thetanet caption train`` with its defaults
(``--no-attention`` for the baseline), in a fresh process limited to 2 CPU cores where the
platform allows it (``os.sched_setaffinity``); both train at the same time (on a machine with
2 cores they share them); the wall time and the load average before and after are recorded
(the machine may be shared: the load says how much). Each model is then
evaluated by ``thetanet caption evaluate --n 1000 --json`` on fresh scenes of the held-out
digits, greedy and with a beam of 3.

    python benchmarks/captions.py [--seed S] [--eval-seed S] [--work DIR] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "captions.md"
PICTURE = ROOT / "docs" / "captions_attention.png"
OTHER_SEEDS = (1, 7, 42)


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _limit_cores(cores: int) -> None:
    """In the child, before exec: run on the first ``cores`` CPUs only."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cores])


def _cli(args: list[str], log: Path) -> subprocess.Popen:
    """Start ``thetanet caption ARGS`` on 2 cores; stderr (the progress) goes to ``log``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with open(log, "w") as err:
        return subprocess.Popen([sys.executable, "-m", "thetanet.cli", "caption", *args], env=env,
                                stdout=subprocess.PIPE, stderr=err, text=True,
                                preexec_fn=lambda: _limit_cores(2))


def _finish(proc: subprocess.Popen, log: Path, what: str) -> str:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"thetanet caption {what} failed:\n{log.read_text()[-3000:]}")
    return out


def train_both(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Both trainings at once (each on 2 cores; the machine has 2): wall time per run."""
    extra = ["--epochs", "2", "--scenes", "200"] if args.quick else []
    runs = {}
    for name, flags in (("attention", []), ("no-attention", ["--no-attention"])):
        cmd = ["train", "--out", str(work / name), "--seed", str(args.seed), *flags,
               "--plots", str(work / f"{name}-plots"), *extra]
        runs[name] = (_load(), time.monotonic(), _cli(cmd, work / f"{name}.log"))
    results: dict[str, Any] = {}
    for name, (before, started, proc) in runs.items():
        _finish(proc, work / f"{name}.log", "train")
        took = time.monotonic() - started
        results[name] = {"train_s": took, "load_before": before, "load_after": _load(),
                         "log": (work / f"{name}.log").read_text().strip().splitlines()}
        print(f"{name}: trained in {took:.0f} s", file=sys.stderr)
    return results


def train_alone(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The attention model once more, alone on the 2 cores: its time without the baseline."""
    extra = ["--epochs", "2", "--scenes", "200"] if args.quick else []
    before, started = _load(), time.monotonic()
    proc = _cli(["train", "--out", str(work / "alone"), "--seed", str(args.seed), "--quiet",
                 *extra], work / "alone.log")
    _finish(proc, work / "alone.log", "train")
    out = {"train_s": time.monotonic() - started, "load_before": before,
           "load_after": _load()}
    out.update(evaluate("alone", work, args, 1))
    return out


def evaluate(name: str, work: Path, args: argparse.Namespace, beam: int,
             seed: int | None = None) -> dict[str, Any]:
    started = time.monotonic()
    seed = args.eval_seed if seed is None else seed
    proc = _cli(["evaluate", "--model", str(work / name), "--seed", str(seed),
                 "--n", str(args.n), "--beam", str(beam), "--json"], work / "eval.log")
    doc = json.loads(_finish(proc, work / "eval.log", "evaluate"))
    doc["seconds"] = time.monotonic() - started
    print(f"{name}: beam {beam}: {doc}", file=sys.stderr)
    return doc


def examples(work: Path, n: int, seed: int) -> list[dict[str, Any]]:
    """A few held-out scenes with the true caption and both models' captions."""
    sys.path.insert(0, str(ROOT / "src"))
    from thetanet.captions.model import Captioner
    from thetanet.captions.train import caption_images
    from thetanet.data import scenes as S

    digits = S.load_scene_digits(os.environ.get("THETANET_DATA"))
    rows: list[dict[str, Any]] = []
    with_att, _ = Captioner.load(work / "attention")
    without, _ = Captioner.load(work / "no-attention")
    scenes = S.make_scenes(digits.test_images, digits.test_labels, n, seed=seed,
                           canvas=with_att.config.canvas)
    a = caption_images(with_att, scenes.images)
    b = caption_images(without, scenes.images)
    for i in range(n):
        rows.append({"true": scenes.captions[i], "attention": a[i], "no_attention": b[i],
                     "digits": len(scenes.placements[i])})
    return rows


def _alone_and_seeds(results: dict[str, Any], args: argparse.Namespace) -> str:
    a = results["alone"]
    seeds = "; ".join(f"seed {s}: {r['exact_match']:.3f}, {r['bleu4']:.4f}"
                      for s, r in results["attention"]["seeds"].items())
    return (f"The attention model trained once more alone (same command and seed, nothing else "
            f"of this benchmark running): **{a['train_s']:.0f} s** wall, load "
            f"{a['load_before']} → {a['load_after']}; evaluated with seed {args.eval_seed}: "
            f"exact match {a['exact_match']:.3f}, BLEU-4 {a['bleu4']:.4f}. The first "
            f"attention model on other test seeds (exact match, BLEU-4): {seeds}. That model "
            "is the fixture of `tests/test_caption_attention.py` (the word naming each digit "
            "of 40 fixed two-digit test scenes puts most of its α on the digit's quadrant).")


def write(results: dict[str, Any], rows: list[dict[str, Any]], args: argparse.Namespace,
          started: float, path: Path) -> None:
    def line(name: str) -> str:
        r = results[name]
        g, b = r["beam1"], r["beam3"]
        return (f"| {name} | {r['train_s']:.0f} | {r['load_before']} → {r['load_after']} | "
                f"{g['exact_match']:.3f} | {g['bleu4']:.4f} | {g['word_accuracy']:.4f} | "
                f"{b['exact_match']:.3f} | {b['bleu4']:.4f} |")

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    text = [
        "# From images to text: the digit-scene captioner (issue 26)",
        "",
        f"Measured by `benchmarks/captions.py` {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}"
        f" UTC in {time.time() - started:.0f} s. Machine: {platform.machine()}, "
        f"{os.cpu_count()} cores ({cores} available, each run limited to 2); Python "
        f"{platform.python_version()}, NumPy {np.__version__}. The two trainings ran at the "
        "same time, and the machine was shared with other sessions' jobs: the load average "
        "(1/5/15 min) before and after each training run says how much (2.0 = both cores "
        "busy); each run's wall time is therefore an upper bound on its time alone.",
        "",
        f"Each model: `thetanet caption train` with its defaults (seed {args.seed}), then "
        f"`thetanet caption evaluate --seed {args.eval_seed} --n {args.n} --json` on fresh "
        "scenes of the 2,000 held-out t10k digits (greedy; and `--beam 3`).",
        "",
        "| model | train s (wall) | load before → after | exact match | BLEU-4 | per-word acc "
        "| exact (beam 3) | BLEU-4 (beam 3) |",
        "|---|---|---|---|---|---|---|---|",
        line("attention"),
        line("no-attention"),
        "",
        _alone_and_seeds(results, args),
        "",
        "## Example held-out scenes",
        "",
        "| digits | true caption | with attention | without attention |",
        "|---|---|---|---|",
    ]
    for r in rows:
        a, b = (c if c == r["true"] else f"**{c}**" for c in (r["attention"], r["no_attention"]))
        text.append(f"| {r['digits']} | {r['true']} | {a} | {b} |")
    text += ["", "(bold: differs from the true caption)", "",
             "## Training log (with attention)", "", "```",
             *results["attention"]["log"][-16:], "```", ""]
    path.write_text("\n".join(text))
    print(f"wrote {path}", file=sys.stderr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--eval-seed", type=int, default=2026, help="test scenes' seed")
    p.add_argument("--n", type=int, default=1000, help="test scenes (default 1000)")
    p.add_argument("--work", default=None, help="keep the models here (default: a temp dir)")
    p.add_argument("--quick", action="store_true", help="tiny runs: check the script only")
    args = p.parse_args()
    started = time.time()
    work = Path(args.work or f"/tmp/thetanet-captions-{os.getpid()}")
    work.mkdir(parents=True, exist_ok=True)
    results = train_both(work, args)
    for name in results:
        for beam in (1, 3):
            results[name][f"beam{beam}"] = evaluate(name, work, args, beam)
    results["attention"]["seeds"] = {s: evaluate("attention", work, args, 1, s)
                                     for s in OTHER_SEEDS}
    results["alone"] = train_alone(work, args)
    rows = examples(work, 8, args.eval_seed + 1)
    if args.quick:  # a check of the script: nothing in the repository is replaced
        write(results, rows, args, started, work / "captions.md")
        return
    write(results, rows, args, started, RESULTS)
    src = work / "attention-plots" / "attention_0.png"
    if src.exists():
        PICTURE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, PICTURE)
        print(f"wrote {PICTURE}", file=sys.stderr)
    fixture = ROOT / "tests" / "fixtures" / "captioner"
    shutil.rmtree(fixture, ignore_errors=True)
    shutil.copytree(work / "attention", fixture)
    print(f"wrote {fixture}", file=sys.stderr)


if __name__ == "__main__":
    main()
