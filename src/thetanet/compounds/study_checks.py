"""What a study may hold, checked before anything is loaded or trained from it.

A study lives in a database anybody with access may write: its setup (the search space, the
seeds) and its trials' parameters are inputs like a command line. :func:`check_space` holds
an :class:`~thetanet.compounds.search.NCSpace` (from a ``--space`` file or a study) to the
command line's rules; :func:`check_seeds` a setup's seeds; :func:`check_params` checks a
trial's parameters against the space they were drawn from — an enqueued trial out of range is
refused, never trained (Optuna only warns). Each problem is one ``ValueError`` line naming the
trial and the parameter.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from thetanet.compounds.features.base import EXTRACTORS, MAX_WEIGHT
from thetanet.compounds.settings import MAX_EPOCHS, MAX_HIDDEN, MAX_SEEDS
from thetanet.search import hidden_activations

__all__ = ["NamedTrial", "check_params", "check_seeds", "check_space"]

_MAX_LAYERS = 10  # hidden layers a search may draw


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return (isinstance(v, numbers.Real) and not isinstance(v, bool)
            and math.isfinite(float(v)))


def _pair(space: Any, name: str, kind: str, low: float, high: float) -> None:
    v = getattr(space, name)
    test = _is_int if kind == "int" else _is_real
    if (not isinstance(v, tuple) or len(v) != 2 or not all(test(x) for x in v)
            or not low <= v[0] <= v[1] <= high):
        raise ValueError(f"search space: {name} must be [lo, hi], {kind}s with "
                         f"{low:g} ≤ lo ≤ hi ≤ {high:g}, got {v!r:.60}")


def _names(space: Any, name: str, known: Any, allow_empty: bool = False) -> None:
    v = getattr(space, name)
    if (not isinstance(v, tuple) or (not v and not allow_empty) or len(v) > 100
            or not all(isinstance(x, str) and x in known for x in v)):
        raise ValueError(f"search space: {name} must list names among "
                         f"{', '.join(sorted(known))[:200]}, got {v!r:.80}")


def check_space(space: Any) -> Any:
    """``space`` (an NCSpace) if every field has the right type and range; else ValueError."""
    _names(space, "features", EXTRACTORS)
    _names(space, "normalize", [n for n, c in EXTRACTORS.items() if "normalize" in c.defaults],
           allow_empty=True)
    _pair(space, "weights", "float", 1e-6, MAX_WEIGHT)
    _pair(space, "layers", "int", 0, _MAX_LAYERS)
    _pair(space, "units", "int", 1, MAX_HIDDEN)
    _names(space, "activations", [a for a in hidden_activations() if a != "maxout"])
    _pair(space, "dropout", "float", 0, 0.99)
    _pair(space, "input_dropout", "float", 0, 0.99)
    _pair(space, "l2", "float", 0, 1e6)
    _pair(space, "learning_rate", "float", 1e-12, 1e3)
    _pair(space, "logit_adjustment", "float", -10, 10)
    _pair(space, "neighbours", "float", 0, MAX_WEIGHT)
    bs = space.batch_sizes
    if (not isinstance(bs, tuple) or not bs or len(bs) > 100
            or not all(_is_int(b) and 1 <= b <= 2**24 for b in bs)):
        raise ValueError(f"search space: batch_sizes must list integers in [1, 2**24], "
                         f"got {bs!r:.60}")
    for name, low, high in (("max_epochs", 1, MAX_EPOCHS), ("patience", 0, MAX_EPOCHS),
                            ("neighbour_blocks", 1, 2)):
        v = getattr(space, name)
        if not _is_int(v) or not low <= v <= high:
            raise ValueError(f"search space: {name} must be an integer in [{low}, {high}], "
                             f"got {v!r:.40}")
    if not isinstance(space.l2_can_be_off, bool):
        raise ValueError("search space: l2_can_be_off must be true or false")
    return space


def _in(v: Any, lo: float, hi: float, integer: bool) -> bool:
    return (_is_int(v) if integer else _is_real(v)) and lo <= v <= hi


def check_params(params: Mapping[str, Any], space: Any, where: str) -> None:
    """A trial's parameters inside the space they must come from: each known parameter of
    the right type and range, the units of every drawn layer present."""
    def bad(name: str, what: str) -> ValueError:
        return ValueError(f"{where}: parameter {name} = {params[name]!r:.40} is outside the "
                          f"search space ({what}); refused, not trained")

    ranges: dict[str, tuple[float, float, bool]] = {
        "layers": (*space.layers, True), "dropout": (*space.dropout, False),
        "input_dropout": (*space.input_dropout, False), "l2": (*space.l2, False),
        "learning_rate": (*space.learning_rate, False),
        "logit_adjustment": (*space.logit_adjustment, False)}
    for name, value in params.items():
        if name in ranges:
            lo, hi, integer = ranges[name]
            if not _in(value, lo, hi, integer):
                raise bad(name, f"{'integer' if integer else 'number'} in [{lo:g}, {hi:g}]")
        elif name.startswith("units_"):
            if not _in(value, *space.units, True):
                raise bad(name, f"integer in [{space.units[0]}, {space.units[1]}]")
        elif name.startswith("weight_"):
            lo, hi = space.neighbours if name.startswith("weight_neighbours") else space.weights
            if not _in(value, lo, hi, False):
                raise bad(name, f"number in [{lo:g}, {hi:g}]")
        elif name.startswith(("use_", "normalize_")) or name == "l2_on":
            if not isinstance(value, bool):
                raise bad(name, "true or false")
        elif name == "activation" and value not in space.activations:
            raise bad(name, f"one of {', '.join(space.activations)}")
        elif name == "batch_size" and value not in space.batch_sizes:
            raise bad(name, f"one of {', '.join(map(str, space.batch_sizes))}")
        elif name.endswith("_space") and value not in space.neighbour_spaces:
            raise bad(name, f"one of {', '.join(space.neighbour_spaces)}")
    missing = [f"units_{i}" for i in range(int(params.get("layers", 0)))
               if f"units_{i}" not in params]
    if missing:
        raise ValueError(f"{where}: parameter {missing[0]} is missing for "
                         f"{params['layers']} layers; refused, not trained")


def check_seeds(seeds: Any, study: str) -> list[int]:
    """A setup's training seeds: a list of 1 to MAX_SEEDS integers ≥ 0."""
    if (not isinstance(seeds, list) or not 0 < len(seeds) <= MAX_SEEDS
            or not all(_is_int(s) and 0 <= s < 2**63 for s in seeds)):
        raise ValueError(f"study {study!r}: setup seeds must be a list of 1 to {MAX_SEEDS} "
                         f"integers ≥ 0, got {seeds!r:.60}")
    return list(seeds)


class NamedTrial:
    """An Optuna trial whose ``suggest_*`` errors name the parameter and the trial: a study
    holding a crafted trial otherwise fails with Optuna's bare "CategoricalDistribution does
    not support dynamic value space"."""

    def __init__(self, trial: Any, where: str) -> None:
        self.trial, self.where = trial, where

    def _named(self, method: str, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.trial, method)(name, *args, **kwargs)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{self.where}: parameter {name}: {exc} (the study holds a "
                             f"trial whose {name} does not fit this search space; use "
                             "another --study)") from None

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self._named("suggest_categorical", name, choices)

    def suggest_int(self, name: str, low: int, high: int, **kwargs: Any) -> Any:
        return self._named("suggest_int", name, low, high, **kwargs)

    def suggest_float(self, name: str, low: float, high: float, **kwargs: Any) -> Any:
        return self._named("suggest_float", name, low, high, **kwargs)
