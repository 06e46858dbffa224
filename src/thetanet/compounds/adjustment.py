"""Post-hoc logit adjustment (Menon et al. 2021) of the classifier's probabilities.

Predict argmax log p − τ log π instead of argmax p, π the relation frequencies of the
training data: τ > 0 favours rarer relations (what a split whose relation frequencies shift
between train and val needs). :func:`adjusted` applies it, :func:`class_prior` estimates π,
and :class:`AdjustedValF1` reports the val weighted-F1 of the adjusted predictions each epoch,
so that early stopping selects on the predictions actually made.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thetanet.callbacks import Callback
from thetanet.metrics import f1_score

__all__ = ["AdjustedValF1", "adjusted", "class_prior"]


def adjusted(probs: np.ndarray, prior: np.ndarray | None, tau: float) -> np.ndarray:
    """Logit adjustment in place: p·π^(−τ), renormalised — the softmax of the adjusted logits
    log p − τ log π (τ = 0: ``probs`` unchanged). Factors that could overflow (or vanish) in
    ``probs``'s dtype are scaled so that the largest is 1 and applied in float64 instead: no
    NaN for any π in (0, 1] and |τ| ≤ 10."""
    if tau:
        if prior is None:
            raise ValueError("logit adjustment needs the training relation frequencies")
        factor = np.asarray(prior, np.float64) ** -tau
        big = np.finfo(probs.dtype).max / (4 * factor.size)
        if np.all(np.isfinite(factor)) and factor.max() < big and factor.min() > 1e-30:
            probs *= factor.astype(probs.dtype)  # the usual case, as it always was computed
            probs /= probs.sum(axis=1, keepdims=True)
        else:
            shift = -tau * np.log(np.asarray(prior, np.float64))
            out = probs.astype(np.float64) * np.exp(shift - shift.max())
            probs[...] = out / out.sum(axis=1, keepdims=True)
    return probs


def class_prior(y: np.ndarray, n_labels: int) -> np.ndarray:
    """Add-one smoothed relation frequencies (every π_r > 0, so log π is finite)."""
    counts = np.bincount(y, minlength=n_labels).astype(np.float64) + 1.0
    return counts / counts.sum()


class AdjustedValF1(Callback):
    """Adds ``val_f1_weighted_adjusted``: val weighted-F1 of the logit-adjusted predictions."""

    key = "val_f1_weighted_adjusted"

    def __init__(self, val_xy: tuple[Any, np.ndarray], prior: np.ndarray | None,
                 tau: float) -> None:
        super().__init__()
        self.x, self.y = val_xy
        self.prior, self.tau = prior, tau
        self.values: list[float] = []  # per epoch (fit's History has recorded logs already)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        probs = adjusted(self.model.predict(self.x), self.prior, self.tau)
        value = f1_score(self.y, probs.argmax(axis=1), average="weighted")
        self.values.append(float(value))
        if logs is not None:
            logs[self.key] = value

    def get_state(self) -> dict[str, Any]:
        return {"values": list(self.values)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.values = [float(v) for v in state.get("values", [])]
