"""The settings chosen on val for each split (see benchmarks/results/nc.md for the search).

``thetanet nc train`` starts from these; every command-line option overrides one field.
"""

from __future__ import annotations

import copy

from thetanet.compounds.system import NCSettings

#: Random splits: an MLP over rank-weighted WordNet + MiniLM (x3) beats softmax regression by
#: ~0.025 val weighted-F1. Lexical splits (no word shared with train): the MLP does not help;
#: softmax regression with L2-normalised WordNet (x4), MiniLM (x3), L2 2e-3 and small batches,
#: averaged over three seeds, is best.
_MLP = {"features": ["wordnet", "minilm-static:weight=3"], "hidden": [512], "dropout": 0.5,
        "batch_size": 128, "l2": 0.0, "seeds": [0]}
_LINEAR = {"features": ["wordnet:normalize=true,weight=4", "minilm-static:weight=3"],
           "hidden": [], "l2": 2e-3, "batch_size": 16, "seeds": [0, 1, 2]}

_RECIPES: dict[str, dict] = {
    "fine_random": _MLP,
    "fine_lexical": _LINEAR,
    "coarse_random": _MLP,
    "coarse_lexical": _LINEAR,
}


def recipe(split: str) -> NCSettings:
    """A fresh copy of the chosen settings for ``split``."""
    if split not in _RECIPES:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(_RECIPES)}")
    return NCSettings(**copy.deepcopy(_RECIPES[split]))
