"""``thetanet logic``: the lecture's logic-gate networks, their truth tables, and learning XNOR."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from thetanet.cli import CLIError
from thetanet.examples.logic import (
    DEFAULT_RECIPE,
    GATES,
    LECTURE_GATES,
    format_theta,
    gate_network,
    learn_gate,
    network_theta,
    truth_table,
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "logic",
        help="the lecture's logic gates (AND, OR, NOT, NOR, XNOR) as networks",
        description="Show the lecture's hand-built networks for AND, OR, NOT, NOR and XNOR: "
                    "their Θ (bias in column 0) and truth tables with the hidden activations "
                    "and h_Θ(x). With --learn, train a small network on a gate's truth table "
                    "by backpropagation over several seeds, and from zero initialisation.")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--learn", metavar="GATE", type=str.upper,
                   choices=["AND", "OR", "NOT", "NOR", "XNOR", "XOR"],
                   help="learn this gate by backprop (e.g. xnor) instead of showing the tables")
    p.add_argument("--hidden", type=int, default=None,
                   help="hidden units for --learn (default 3: a 2-3-1 network)")
    p.add_argument("--seeds", type=int, default=20, help="number of seeds for --learn (20)")
    p.add_argument("--max-epochs", type=int, default=None,
                   help="epochs (full-batch updates) per seed for --learn (default 2000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.learn:
        return _learn(args)
    gates: dict[str, Any] = {}
    for name in LECTURE_GATES:
        model = gate_network(name)
        gates[name] = {"theta": network_theta(model), "rows": truth_table(name, model)}
    if args.json:
        print(json.dumps({"gates": gates}))
        return 0
    for name, info in gates.items():
        _print_gate(GATES[name], info)
    return 0


def _print_gate(gate: Any, info: dict[str, Any]) -> None:
    thetas = info["theta"]
    print(f"{gate.name}: {gate.formula}")
    for j, theta in enumerate(thetas, start=1):
        label = f"  Θ^({j}) = "
        lines = format_theta(theta)
        print(label + lines[0])
        for line in lines[1:]:
            print(" " * len(label) + line)
    n_in = len(info["rows"][0]["x"])
    n_hid = len(info["rows"][0]["hidden"])
    head = " ".join(f"x{i + 1}" for i in range(n_in))
    hid_head = " ".join(f"a{i + 1}^(2)" for i in range(n_hid))
    cols = [head] + ([hid_head] if n_hid else []) + ["h_Θ(x)    ", "output", "expected"]
    print("  " + " | ".join(cols))
    for row in info["rows"]:
        xs = " ".join(f"{v:>2}" for v in row["x"])
        parts = [xs.ljust(len(head))]
        if n_hid:
            parts.append(" ".join(f"{v:6.4f}" for v in row["hidden"]).ljust(len(hid_head)))
        expected = int(gate.fn(*row["x"]))
        mark = "" if expected == row["output"] else "  MISMATCH"
        parts += [f"{row['h']:.4e}", f"{row['output']:>6}", f"{expected:>8}{mark}"]
        print("  " + " | ".join(parts))
    print()


def _learn(args: argparse.Namespace) -> int:
    if args.seeds < 1:
        raise CLIError("--seeds must be at least 1")
    if args.hidden is not None and args.hidden < 1:
        raise CLIError("--hidden must be at least 1")
    if args.max_epochs is not None and args.max_epochs < 1:
        raise CLIError("--max-epochs must be at least 1")
    t0 = time.perf_counter()
    learned = learn_gate(args.learn, seeds=range(args.seeds), hidden=args.hidden,
                         max_epochs=args.max_epochs)
    t_random = time.perf_counter() - t0
    # Zero initialisation leaves nothing random (full batch: the shuffling seed only reorders
    # a sum), so one run shows it.
    zeros = learn_gate(args.learn, seeds=[0], hidden=args.hidden, max_epochs=args.max_epochs,
                       initializer="zeros")
    opt = DEFAULT_RECIPE["optimizer"]
    recipe = (f"{'1' if args.learn == 'NOT' else '2'}-{learned.hidden}-1 network of "
              f"{DEFAULT_RECIPE['activation']} units, binary cross-entropy, full-batch SGD "
              f"η={opt['learning_rate']:g} μ={opt['momentum']:g}, up to {learned.max_epochs} "
              f"epochs")
    if args.json:
        print(json.dumps({"gate": args.learn, "recipe": recipe, "seconds": round(t_random, 3),
                          "random_init": learned.summary(), "zero_init": zeros.summary()}))
        return 0
    print(f"Learning {args.learn} by backprop: {recipe}; random (Glorot/ε-uniform) "
          f"initialisation, seeds 0..{args.seeds - 1}")
    print("  seed | epochs to 100% accuracy")
    for seed, ep, acc in zip(learned.seeds, learned.epochs, learned.accuracy):
        shown = str(ep) if ep is not None else f"not reached (accuracy {acc:.2f})"
        print(f"  {seed:>4} | {shown}")
    s = learned.summary()
    if s["reached_100"]:
        print(f"{s['reached_100']}/{s['seeds']} seeds reach 100% (median {s['epochs_median']:g} "
              f"epochs, max {s['epochs_max']}) in {t_random:.1f} s")
    else:
        print(f"0/{s['seeds']} seeds reach 100%")
    z = zeros.summary()
    accs = sorted(set(f"{a:.2f}" for a in zeros.accuracy))
    why = ("all hidden units compute the same function and receive the same update, so the "
           "network acts like one hidden unit: a monotone function of x1 + x2")
    if z["reached_100"]:
        print(f"Zero initialisation (every Θ = 0, nothing random): reaches 100% after "
              f"{z['epochs_max']} epochs; {why}, which is enough for {args.learn}.")
    else:
        print(f"Zero initialisation (every Θ = 0, nothing random): does not reach 100% in "
              f"{z['max_epochs']} epochs (final accuracy {', '.join(accs)}); {why}, and "
              f"{args.learn} is not one.")
    return 0
