r"""The lecture's "Intuitions": logic gates computed by logistic units with large weights.

A single logistic unit h_Θ(x) = g(Θ [1, x1, x2]ᵀ) with |Θ| large is (almost) a step function,
so a suitable Θ computes a Boolean function of binary inputs:

==========================  ==================================  ========================
gate                        Θ (bias in column 0)                 network
==========================  ==================================  ========================
x1 AND x2                   [−30, +20, +20]                      2 → 1
x1 OR x2                    [−10, +20, +20]                      2 → 1
NOT x1                      [+10, −20]                           1 → 1
(NOT x1) AND (NOT x2)       [+10, −20, −20]   (NOR)              2 → 1
x1 XNOR x2                  Θ^(1) = [AND; NOR], Θ^(2) = OR       2 → 2 → 1
==========================  ==================================  ========================

XNOR is the lecture's two-layer example: the hidden layer computes a1^(2) = x1 AND x2 and
a2^(2) = (NOT x1) AND (NOT x2), the output h_Θ(x) = a1^(2) OR a2^(2).

:func:`gate_network` builds these networks as :class:`thetanet.Sequential` models (their Θ set
through ``Dense.theta``), :func:`truth_table` evaluates them on every input, and
:func:`learn_gate` shows that backpropagation finds such weights itself from a random
initialisation — and that it cannot from zeros (symmetry: identical hidden units stay identical,
and XNOR is not a monotone function of x1 + x2).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thetanet.builders import mlp
from thetanet.callbacks import Callback
from thetanet.data.logic import GATES, gate, gate_dataset
from thetanet.layers import Dense
from thetanet.model import Sequential

__all__ = [
    "DEFAULT_RECIPE",
    "GATES",
    "LECTURE_GATES",
    "LECTURE_THETA",
    "LearnResult",
    "format_theta",
    "gate_dataset",
    "gate_network",
    "learn_gate",
    "make_learner",
    "network_theta",
    "truth_table",
]


#: The lecture's weights: for each gate, the list Θ^(1), Θ^(2), … (rows = units, column 0 = bias).
LECTURE_THETA: dict[str, list[list[list[float]]]] = {
    "AND": [[[-30.0, 20.0, 20.0]]],
    "OR": [[[-10.0, 20.0, 20.0]]],
    "NOT": [[[10.0, -20.0]]],
    "NOR": [[[10.0, -20.0, -20.0]]],
    "XNOR": [
        [[-30.0, 20.0, 20.0],    # a1^(2) = x1 AND x2
         [10.0, -20.0, -20.0]],  # a2^(2) = (NOT x1) AND (NOT x2)
        [[-10.0, 20.0, 20.0]],   # h_Θ(x) = a1^(2) OR a2^(2)
    ],
}

#: The gates the lecture builds by hand, in the order it shows them.
LECTURE_GATES: tuple[str, ...] = ("AND", "OR", "NOT", "NOR", "XNOR")


def gate_network(name: str, dtype: Any = "float64") -> Sequential:
    """The lecture's hand-built network for ``name`` (logistic units, Θ from LECTURE_THETA).

    float64 by default so that values like g(−30) ≈ 9.4e−14 are shown exactly.
    """
    g = gate(name)
    if g.name not in LECTURE_THETA:
        raise ValueError(f"the lecture gives no weights for {g.name}; "
                         f"known: {', '.join(LECTURE_THETA)}")
    thetas = LECTURE_THETA[g.name]
    model = Sequential([Dense(len(t), "logistic") for t in thetas], dtype=dtype,
                       name=f"{g.name.lower()}_gate")
    model.build(g.arity)
    for layer, theta in zip(model.layers, thetas):
        layer.theta = np.asarray(theta)  # type: ignore[attr-defined]
    return model


def _activations(model: Sequential, x: np.ndarray) -> list[np.ndarray]:
    """[a^(2), …, a^(L)] for the rows of ``x`` (inference forward pass)."""
    outs = []
    a = x
    for layer in model.layers:
        a = layer.forward(a, training=False)
        outs.append(np.asarray(a))
    return outs


def truth_table(name: str, model: Sequential | None = None) -> list[dict[str, Any]]:
    """Rows ``{"x", "hidden", "h", "output"}`` for every input of the gate.

    ``hidden`` lists the hidden activations a1^(2), a2^(2), … (empty for one-layer gates),
    ``h`` is h_Θ(x) and ``output`` = 1 if h_Θ(x) > 0.5 else 0.
    ``model`` defaults to the lecture's network :func:`gate_network`.
    """
    g = gate(name)
    model = gate_network(g.name) if model is None else model
    x, _ = gate_dataset(g.name, dtype=model.dtype)
    acts = _activations(model, x)
    hidden = np.hstack(acts[:-1]) if len(acts) > 1 else np.zeros((x.shape[0], 0))
    h = acts[-1][:, 0]
    return [
        {"x": [int(v) for v in x[i]], "hidden": [float(v) for v in hidden[i]],
         "h": float(h[i]), "output": int(h[i] > 0.5)}
        for i in range(x.shape[0])
    ]


def network_theta(model: Sequential) -> list[list[list[float]]]:
    """Θ^(1), Θ^(2), … of a model's Dense layers as nested lists (bias in column 0)."""
    return [np.asarray(layer.theta).tolist() for layer in model.layers  # type: ignore[attr-defined]
            if isinstance(layer, Dense)]


# --------------------------------------------------------------------------------------------
# Learning a gate by backpropagation
# --------------------------------------------------------------------------------------------

#: The default recipe for learning XNOR: a 2-3-1 network of logistic units, binary
#: cross-entropy, full-batch gradient descent with momentum (one epoch = one update).
DEFAULT_RECIPE: dict[str, Any] = {
    "hidden": 3,
    "activation": "logistic",
    "optimizer": {"name": "sgd", "learning_rate": 1.0, "momentum": 0.9},
    "max_epochs": 2000,
    "initializer": "glorot_uniform",
}


class _StopWhenPerfect(Callback):
    """Stop training after the first epoch at whose end every row is classified correctly."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y.astype(bool)
        self.reached: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        pred = self.model.predict(self.x)[:, 0] > 0.5
        if np.array_equal(pred, self.y):
            self.reached = epoch + 1
            self.model.stop_training = True


@dataclass
class LearnResult:
    """Outcome of :func:`learn_gate` over several seeds."""

    gate: str
    hidden: int
    initializer: str
    max_epochs: int
    seeds: list[int]
    #: epochs to reach 100% training accuracy per seed (None = never within ``max_epochs``)
    epochs: list[int | None]
    #: final accuracy per seed
    accuracy: list[float]
    #: final Θ per seed
    thetas: list[list[list[list[float]]]] = field(repr=False, default_factory=list)

    @property
    def n_perfect(self) -> int:
        return sum(e is not None for e in self.epochs)

    def summary(self) -> dict[str, Any]:
        done = [e for e in self.epochs if e is not None]
        return {
            "gate": self.gate, "hidden": self.hidden, "initializer": self.initializer,
            "max_epochs": self.max_epochs, "seeds": len(self.seeds),
            "reached_100": self.n_perfect,
            "epochs_median": float(np.median(done)) if done else None,
            "epochs_max": max(done) if done else None,
            "epochs": self.epochs, "accuracy": self.accuracy,
        }


def make_learner(arity: int, hidden: int = 3, activation: str = "logistic",
                 initializer: Any = "glorot_uniform", seed: int | None = 0,
                 dtype: Any = "float32") -> Sequential:
    """An ``arity``-``hidden``-1 network with logistic output, for a Boolean function."""
    return mlp([arity, hidden, 1], activation=activation, output_activation="logistic",
               kernel_initializer=initializer, output_initializer=initializer, seed=seed,
               dtype=dtype)


def learn_gate(name: str = "XNOR", seeds: Iterable[int] = range(20), hidden: int | None = None,
               initializer: Any = None, max_epochs: int | None = None,
               optimizer: Any = None, activation: str | None = None) -> LearnResult:
    """Train the gate's network by backprop from each seed; record epochs to 100% accuracy.

    Defaults are :data:`DEFAULT_RECIPE`: 2-3-1 logistic units, Glorot-uniform Θ (the lecture's
    ε-uniform, ε = √6/√(L_in + L_out)), binary cross-entropy, full batch, SGD η = 1, μ = 0.9.
    With ``initializer="zeros"`` every hidden unit computes the same function and gets the
    same update, so the network behaves like one hidden unit and XNOR stays out of reach.
    """
    g = gate(name)
    r = DEFAULT_RECIPE
    hidden = int(r["hidden"] if hidden is None else hidden)
    initializer = r["initializer"] if initializer is None else initializer
    max_epochs = int(r["max_epochs"] if max_epochs is None else max_epochs)
    optimizer = r["optimizer"] if optimizer is None else optimizer
    activation = r["activation"] if activation is None else activation
    if hidden < 1 or max_epochs < 1:
        raise ValueError("hidden and max_epochs must be positive")
    x, y = gate_dataset(g.name)
    seeds = [int(s) for s in seeds]
    epochs: list[int | None] = []
    accs: list[float] = []
    thetas = []
    for seed in seeds:
        model = make_learner(g.arity, hidden, activation, initializer, seed=seed)
        model.compile(dict(optimizer) if isinstance(optimizer, dict) else optimizer,
                      "binary_crossentropy")
        stop = _StopWhenPerfect(x, y)
        model.fit(x, y, epochs=max_epochs, batch_size=None, seed=seed, verbose=0,
                  callbacks=[stop])
        epochs.append(stop.reached)
        accs.append(float(np.mean((model.predict(x)[:, 0] > 0.5) == y.astype(bool))))
        thetas.append(network_theta(model))
    init_name = initializer if isinstance(initializer, str) else str(initializer)
    return LearnResult(g.name, hidden, init_name, max_epochs, seeds, epochs, accs, thetas)


def format_theta(theta: Sequence[Sequence[float]], indent: int = 0) -> list[str]:
    """Lines showing a Θ matrix with aligned columns (integers printed without decimals)."""
    cells = [[f"{v:g}" if float(v).is_integer() else f"{v:.3f}" for v in row] for row in theta]
    width = max(len(c) for row in cells for c in row)
    pad = " " * indent
    return [pad + "[" + " ".join(c.rjust(width) for c in row) + "]" for row in cells]
