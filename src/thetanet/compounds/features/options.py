"""The options each extractor declares, and one check of them for every way they arrive.

An extractor's ``option_rules`` maps each option it accepts to a :data:`Rule`: a function of
the value that returns ``None`` when it is acceptable, else what it must be ("an integer in
[1, 20]"). :func:`check_options` applies them — unknown names, every value, and the
extractor's cross-option check (``chars``: ``ngram_min ≤ ngram_max``) — and raises one
``ValueError`` line naming the extractor and the option. It runs when an extractor is made
(so a model file's options pass through it) and, before any data is read, for the specs of
``nc train --features``, of a study and of a search space
(:func:`thetanet.compounds.features.featureset.check_feature_spec`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["MAX_WEIGHT", "Rule", "anything", "boolean", "check_options", "choice", "integer",
           "name_list", "nullable", "number", "text"]

#: Largest |weight| of an extractor's block (beyond, float32 features overflow).
MAX_WEIGHT = 1e6

Rule = Callable[[Any], "str | None"]


def anything(v: Any) -> str | None:
    """Any JSON value (the rule of an option an extractor declares only by its default)."""
    return None


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, numbers.Integral)) and not isinstance(v, bool)


def integer(low: int, high: int) -> Rule:
    """An integer in [low, high]."""
    what = f"a positive integer ≤ {high}" if low == 1 else f"an integer in [{low}, {high}]"

    def rule(v: Any) -> str | None:
        return None if _is_int(v) and low <= v <= high else what
    return rule


def number(low: float, high: float) -> Rule:
    """A finite number in [low, high]."""
    def rule(v: Any) -> str | None:
        ok = (isinstance(v, numbers.Real) and not isinstance(v, bool)
              and math.isfinite(float(v)) and low <= v <= high)
        return None if ok else f"a finite number in [{low:g}, {high:g}]"
    return rule


def boolean(v: Any) -> str | None:
    """true or false."""
    return None if isinstance(v, bool) else "true or false"


def choice(*values: str) -> Rule:
    """One of ``values``."""
    def rule(v: Any) -> str | None:
        return None if isinstance(v, str) and v in values else f"one of {', '.join(values)}"
    return rule


def text(most: int = 4096) -> Rule:
    """A string of 1 to ``most`` characters, without control characters."""
    def rule(v: Any) -> str | None:
        ok = (isinstance(v, str) and 0 < len(v) <= most
              and not any(ord(c) < 32 or ord(c) == 127 for c in v))
        return None if ok else f"a string of 1 to {most} printable characters"
    return rule


def nullable(inner: Rule) -> Rule:
    """null, or what ``inner`` accepts."""
    def rule(v: Any) -> str | None:
        why = None if v is None else inner(v)
        return None if why is None else f"null or {why}"
    return rule


def name_list(allowed: Iterable[str]) -> Rule:
    """A non-empty list of names from ``allowed`` (or one string joining them with
    ``+``, as a command line gives it)."""
    known = tuple(allowed)

    def rule(v: Any) -> str | None:
        items = v.replace(",", "+").split("+") if isinstance(v, str) else v
        ok = (isinstance(items, list) and 0 < len(items) <= 4 * len(known)
              and all(isinstance(p, str) and p.strip() in known for p in items))
        return None if ok else f"a non-empty list of names from {'+'.join(known)}"
    return rule


def check_options(extractor: str, rules: Mapping[str, Rule], options: Mapping[str, Any],
                  combined: Callable[[Mapping[str, Any]], str | None] | None = None) -> None:
    """Raise one ``ValueError`` line for an unknown option of ``extractor``, a value its rule
    refuses, or (``combined``, given all options with their defaults) a bad combination."""
    unknown = sorted(set(options) - set(rules))
    if unknown:
        raise ValueError(f"unknown option(s) for {extractor!r}: {', '.join(unknown)[:200]} "
                         f"(accepted: {', '.join(sorted(rules))})")
    for key, value in options.items():
        why = rules[key](value)
        if why is not None:
            raise ValueError(f"{extractor}: option {key} must be {why}, got {value!r:.60}")
    if combined is not None:
        why = combined(options)
        if why is not None:
            raise ValueError(f"{extractor}: {why}")
