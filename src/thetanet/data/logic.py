r"""The Boolean functions of the lecture's "Intuitions" as data: truth tables of logic gates.

A gate maps ``arity`` binary inputs x ∈ {0, 1}^arity to a target y ∈ {0, 1}; :func:`gate_dataset`
lists every input (in binary counting order) with its target. The networks that compute these
gates, by hand and learned, are the example :mod:`thetanet.examples.logic`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["GATES", "Gate", "gate", "gate_dataset"]


@dataclass(frozen=True)
class Gate:
    """A Boolean function of ``arity`` binary inputs and its description."""

    name: str
    arity: int
    fn: Callable[..., bool]
    formula: str


GATES: dict[str, Gate] = {
    "AND": Gate("AND", 2, lambda a, b: bool(a and b), "x1 AND x2"),
    "OR": Gate("OR", 2, lambda a, b: bool(a or b), "x1 OR x2"),
    "NOT": Gate("NOT", 1, lambda a: not a, "NOT x1"),
    "NOR": Gate("NOR", 2, lambda a, b: (not a) and (not b), "(NOT x1) AND (NOT x2)"),
    "XNOR": Gate("XNOR", 2, lambda a, b: bool(a) == bool(b),
                 "x1 XNOR x2 = (x1 AND x2) OR ((NOT x1) AND (NOT x2))"),
    "XOR": Gate("XOR", 2, lambda a, b: bool(a) != bool(b), "x1 XOR x2"),
}


def gate(name: str) -> Gate:
    """The gate called ``name`` (case-insensitive)."""
    key = name.upper()
    if key not in GATES:
        raise ValueError(f"unknown gate {name!r}; known: {', '.join(GATES)}")
    return GATES[key]


def gate_dataset(name: str, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """All 2^arity inputs x (rows, in binary counting order) and the targets y ∈ {0, 1}."""
    g = gate(name)
    x = np.array(list(itertools.product((0, 1), repeat=g.arity)), dtype=dtype)
    y = np.array([g.fn(*map(int, row)) for row in x], dtype=dtype)
    return x, y
