"""Classification metrics in NumPy: accuracy, confusion matrix, per-class P/R/F1, macro and
support-weighted F1 (the noun-compound competition's metric, as ``sklearn.metrics.f1_score(...,
average="weighted")``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def to_labels(y: np.ndarray) -> np.ndarray:
    """Class labels from integer labels, one-hot / probability rows, or one sigmoid column."""
    y = np.asarray(y)
    if y.ndim == 1:
        return y.astype(np.int64) if y.dtype.kind != "f" else np.rint(y).astype(np.int64)
    if y.shape[1] == 1:
        return (y[:, 0] > 0.5).astype(np.int64)
    return np.asarray(y.argmax(axis=1))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of rows whose predicted class equals the true one (labels or rows accepted)."""
    t, p = to_labels(y_true), to_labels(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.shape[0]} rows but y_pred has {p.shape[0]}")
    return float((t == p).mean()) if t.size else 0.0


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int | None = None) -> np.ndarray:
    """C[i, j] = number of examples of true class i predicted as j."""
    t, p = to_labels(y_true), to_labels(y_pred)
    k = num_classes if num_classes is not None else int(max(t.max(initial=-1),
                                                            p.max(initial=-1)) + 1)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def precision_recall_f1(y_true: Any, y_pred: Any, num_classes: int | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall, F1 and support (0 where undefined, as scikit-learn)."""
    c = confusion_matrix(y_true, y_pred, num_classes).astype(np.float64)
    tp = np.diag(c)
    pred, support = c.sum(axis=0), c.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred > 0, tp / pred, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return precision, recall, f1, support.astype(np.int64)


def f1_score(y_true: Any, y_pred: Any, average: str = "weighted",
             num_classes: int | None = None) -> float:
    """F1 averaged over the classes present in ``y_true`` or ``y_pred``: ``"macro"`` (plain
    mean) or ``"weighted"`` (by support), matching scikit-learn's definitions."""
    if average not in ("macro", "weighted"):
        raise ValueError(f"average must be 'macro' or 'weighted', got {average!r}")
    t, p = to_labels(y_true), to_labels(y_pred)
    if t.size == 0:
        return 0.0
    _, _, f1, support = precision_recall_f1(t, p, num_classes)
    present = np.zeros(f1.shape[0], bool)
    present[np.unique(np.concatenate([t, p]))] = True
    if average == "macro":
        return float(f1[present].mean())
    return float((f1 * support).sum() / support.sum())


METRICS: dict[str, Callable[[Any, Any], float]] = {
    "accuracy": accuracy,
    "acc": accuracy,
    "f1_weighted": lambda t, p: f1_score(t, p, "weighted"),
    "f1_macro": lambda t, p: f1_score(t, p, "macro"),
}


def get(name: str) -> Callable[[Any, Any], float]:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}")
    return METRICS[name]
