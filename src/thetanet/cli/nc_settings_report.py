"""What ``thetanet nc train`` ran, said in full: every setting (the neighbours blocks and the
logit adjustment included) and where the settings came from — the split's recipe, a study
trial (``--from-study``), and the options that overrode them. Printed in the progress, in the
summary and in ``--json``, so that the output alone tells which recipe ran."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from thetanet.compounds.recipes import SPLIT_RECIPES

__all__ = ["OVERRIDES", "describe_settings", "settings_json", "settings_origin"]

#: ``nc train`` options that override one settings field each: (option, args attribute).
OVERRIDES: tuple[tuple[str, str], ...] = (
    ("--features", "features"), ("--hidden", "hidden"), ("--dropout", "dropout"),
    ("--input-dropout", "input_dropout"), ("--l2", "l2"), ("--lr", "lr"),
    ("--batch-size", "batch_size"), ("--max-epochs", "max_epochs"),
    ("--patience", "patience"), ("--logit-adjustment", "logit_adjustment"),
    ("--neighbours", "neighbours"), ("--ensemble", "ensemble"))


def settings_origin(split: str, args: argparse.Namespace) -> str:
    """"recipe fine_random (study …, trial 14 …)", "study 'nc-x' trial 3 (val …)", followed
    by the options given on the command line that changed it."""
    study = getattr(args, "study_origin", None)
    if study is not None:
        text = (f"study {study['study']!r} trial {study['trial']} (val weighted-F1 "
                f"{study['value']:.4f})")
    else:
        where = SPLIT_RECIPES[split].origin or "benchmarks/results/nc.md"
        text = f"recipe {split} (recipes.py: {where})"
    given = [opt for opt, attr in OVERRIDES if getattr(args, attr, None) is not None]
    if getattr(args, "seed", 0):
        given.append("--seed")
    return text + (f", overridden by {', '.join(given)}" if given else "")


def _model(s: Any) -> str:
    if not s.hidden:
        return "softmax regression"
    return f"MLP {'-'.join(map(str, s.hidden))} {s.activation}, dropout {s.dropout:.3g}"


def describe_settings(s: Any) -> str:
    """Every setting on one line, in the order of the pipeline."""
    blocks = s.neighbour_blocks()
    neighbours = ("off" if not blocks else
                  f"{len(blocks)} block(s): " + " | ".join(b.strip() or "defaults"
                                                          for b in s.neighbours.split(";")))
    return (f"{_model(s)}; features {', '.join(s.features)}; neighbours {neighbours}; "
            f"logit adjustment τ={s.logit_adjustment:.3g}; input dropout "
            f"{s.input_dropout:.3g}; L2 {s.l2:.3g}; Adam lr {s.learning_rate:.3g}, batch "
            f"{s.batch_size}; early stopping: patience {s.patience}, at most {s.max_epochs} "
            f"epochs; seeds {s.seeds}")


def settings_json(s: Any, origin: str) -> dict[str, Any]:
    """The settings for ``--json``: every field, and where they came from."""
    return {"settings": asdict(s), "settings_from": origin}
