"""The settings chosen on val for each split (see benchmarks/results/nc.md for the search).

``thetanet nc train`` starts from these; every command-line option overrides one field.
"""

from __future__ import annotations

from thetanet.compounds.system import NCSettings

_RECIPES: dict[str, dict] = {
    "fine_random": {},
    "fine_lexical": {},
    "coarse_random": {},
    "coarse_lexical": {},
}


def recipe(split: str) -> NCSettings:
    """A fresh copy of the chosen settings for ``split``."""
    if split not in _RECIPES:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(_RECIPES)}")
    return NCSettings(**_RECIPES[split])
