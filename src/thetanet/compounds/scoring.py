"""The competition scorer: support-weighted F1 (the literature's metric), accuracy, macro-F1 and
per-relation precision / recall / F1, plus the published bests to compare against."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from thetanet import metrics
from thetanet.compounds.recipes import PUBLISHED_BEST

__all__ = ["PUBLISHED_BEST", "alignment_problems", "format_report", "score_labels"]


def alignment_problems(gold: Sequence[tuple[str, str]], pred: Sequence[tuple[str, str]],
                       gold_name: str, pred_name: str) -> list[str]:
    """What keeps predictions from being scored against gold: a different number of compounds,
    or a compound (modifier, head) other than gold's at the same line. Empty when they align."""
    problems = []
    if len(gold) != len(pred):
        problems.append(f"{gold_name} has {len(gold)} compounds but {pred_name} has {len(pred)}")
    for i, ((gm, gh), (pm, ph)) in enumerate(zip(gold, pred), start=1):
        if (gm, gh) != (pm, ph):
            problems.append(f"line {i}: gold has '{gm} {gh}' but predictions have '{pm} {ph}'")
    return problems


def score_labels(gold: Sequence[str], pred: Sequence[str],
                 labels: Sequence[str] | None = None) -> dict[str, Any]:
    """Accuracy, macro-F1, weighted-F1 and per-relation P/R/F1/support for string labels."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    inventory = list(labels) if labels is not None else sorted(set(gold) | set(pred))
    index = {lab: i for i, lab in enumerate(inventory)}
    extra = sorted((set(gold) | set(pred)) - set(index))
    for lab in extra:
        index[lab] = len(index)
        inventory.append(lab)
    g = np.array([index[x] for x in gold], np.int64)
    p = np.array([index[x] for x in pred], np.int64)
    k = len(inventory)
    prec, rec, f1, support = metrics.precision_recall_f1(g, p, k)
    per = {lab: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                 "support": int(support[i])} for i, lab in enumerate(inventory)
           if support[i] > 0 or (p == i).any()}
    return {
        "n": int(len(g)),
        "accuracy": metrics.accuracy(g, p),
        "macro_f1": metrics.f1_score(g, p, "macro", k),
        "weighted_f1": metrics.f1_score(g, p, "weighted", k),
        "per_relation": per,
        "confusion": metrics.confusion_matrix(g, p, k).tolist(),
        "labels": inventory,
    }


def format_report(result: dict[str, Any], split: str | None = None, title: str = "val",
                  per_relation: bool = True) -> str:
    """A readable summary: headline metrics beside the published best, then per relation."""
    lines = [f"{title}: n={result['n']}  accuracy={result['accuracy']:.4f}  "
             f"macro-F1={result['macro_f1']:.4f}  weighted-F1={result['weighted_f1']:.4f}"]
    if split in PUBLISHED_BEST:
        best = PUBLISHED_BEST[split]
        lines.append(f"  published best weighted-F1 on {split} (test): {best:.3f}  "
                     f"(ours on {title}: {result['weighted_f1']:.3f}, "
                     f"{result['weighted_f1'] - best:+.3f})")
    if per_relation:
        width = max([len(r) for r in result["per_relation"]] + [8])
        lines.append(f"  {'relation':<{width}}  {'P':>6} {'R':>6} {'F1':>6} {'n':>5}")
        for rel, m in sorted(result["per_relation"].items(), key=lambda kv: -kv[1]["support"]):
            lines.append(f"  {rel:<{width}}  {m['precision']:6.3f} {m['recall']:6.3f} "
                         f"{m['f1']:6.3f} {m['support']:5d}")
    return "\n".join(lines)
