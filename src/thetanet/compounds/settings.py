"""What defines a trained noun-compound system besides the data: :class:`NCSettings`."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from thetanet.activations import get as get_activation
from thetanet.compounds.features.featureset import check_feature_spec
from thetanet.compounds.features.neighbours import NeighbourOptions

#: |τ| of the logit adjustment accepted (beyond, π^(−τ) overflows float32 probabilities).
MAX_LOGIT_ADJUSTMENT = 10.0
#: Widest hidden layer accepted (the command line's rule, and a study's or a model file's).
MAX_HIDDEN = 100_000
#: Most hidden layers, seeds (ensemble members), epochs and the largest batch accepted.
MAX_LAYERS, MAX_SEEDS, MAX_EPOCHS, MAX_BATCH = 100, 1_000, 100_000, 2**24

__all__ = ["DEFAULT_FEATURES", "MAX_HIDDEN", "NCSettings"]

DEFAULT_FEATURES = ("wordnet", "minilm-static")


@dataclass
class NCSettings:
    """Everything that defines a trained system besides the data (all chosen on val)."""

    features: list[str] = field(default_factory=lambda: list(DEFAULT_FEATURES))
    hidden: list[int] = field(default_factory=list)  # [] = softmax regression
    activation: str = "relu"
    dropout: float = 0.0
    input_dropout: float = 0.0
    l2: float = 0.0
    learning_rate: float = 1e-3
    batch_size: int = 64
    max_epochs: int = 60
    patience: int = 6  # epochs without improvement before stopping (Keras's count)
    seeds: list[int] = field(default_factory=lambda: [0])
    #: τ of post-hoc logit adjustment (Menon et al. 2021): predict argmax log p − τ log π,
    #: π the training relation frequencies; τ > 0 favours rarer relations (0: plain argmax)
    logit_adjustment: float = 0.0
    #: the neighbours block (:mod:`thetanet.compounds.features.neighbours`): ``None`` = off,
    #: else its options, ``"k=50,temperature=0.05,weight=5,exclude=shared-word"`` (any
    #: subset; ``""`` = the defaults) — the relation histogram of the nearest training
    #: compounds, appended to the features; several blocks separated by ``;``
    neighbours: str | None = None

    def validate(self) -> None:
        """Every field by the command line's rules (types too: the settings may come from a
        study or a model file), each problem one ``ValueError`` line naming the setting."""
        _check_list(self.features, "features", 100, check_feature_spec)
        _check_list(self.hidden, "hidden", MAX_LAYERS, lambda h: _whole(h, "hidden sizes", 1,
                                                                         MAX_HIDDEN))
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden sizes must be positive, got {self.hidden}")
        if not isinstance(self.activation, str) or not 0 < len(self.activation) <= 100:
            raise ValueError(f"activation must be a name, got {self.activation!r:.40}")
        get_activation(self.activation)  # ValueError listing the known ones
        for name in ("dropout", "input_dropout"):
            _real(getattr(self, name), name, 0, 1, high_open=True)
        if not 0 <= self.dropout < 1 or not 0 <= self.input_dropout < 1:
            raise ValueError("dropout rates must be in [0, 1)")
        _real(self.l2, "l2", 0, math.inf)
        _real(self.learning_rate, "learning_rate", 0, math.inf, low_open=True)
        _whole(self.batch_size, "batch_size", 1, MAX_BATCH)
        _whole(self.max_epochs, "max_epochs", 1, MAX_EPOCHS)
        _whole(self.patience, "patience", 0, MAX_EPOCHS)
        _check_list(self.seeds, "seeds", MAX_SEEDS, lambda s: _whole(s, "seeds", 0, 2**63 - 1))
        if not self.seeds:
            raise ValueError("need at least one seed")
        tau = self.logit_adjustment
        if (isinstance(tau, bool) or not isinstance(tau, numbers.Real)
                or not math.isfinite(tau) or abs(tau) > MAX_LOGIT_ADJUSTMENT):
            raise ValueError(f"logit_adjustment must be finite, in [-{MAX_LOGIT_ADJUSTMENT:g}, "
                             f"{MAX_LOGIT_ADJUSTMENT:g}], got {tau}")
        if self.neighbours is not None and not isinstance(self.neighbours, str):
            raise ValueError(f"neighbours must be null or a string of options, got "
                             f"{self.neighbours!r:.40}")
        self.neighbour_blocks()

    def neighbour_blocks(self) -> list[NeighbourOptions]:
        """The parsed :attr:`neighbours`, one options per block (none: no block);
        ``ValueError`` when invalid."""
        return [] if self.neighbours is None else NeighbourOptions.parse_many(self.neighbours)

    def neighbour_options(self) -> NeighbourOptions | None:
        """The options of the one block (``None``: no block); ``ValueError`` when invalid
        or when there are several (see :meth:`neighbour_blocks`)."""
        blocks = self.neighbour_blocks()
        if len(blocks) > 1:
            raise ValueError(f"neighbours: {len(blocks)} blocks, not one")
        return blocks[0] if blocks else None


def _whole(v: Any, name: str, low: int, high: int) -> None:
    if (isinstance(v, bool) or not isinstance(v, numbers.Integral)
            or not low <= v <= high):
        raise ValueError(f"{name} must be an integer in [{low:,}, {high:,}], got {v!r:.40}")


def _real(v: Any, name: str, low: float, high: float, *, low_open: bool = False,
          high_open: bool = False) -> None:
    ok = (isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))
          and (v > low if low_open else v >= low) and (v < high if high_open else v <= high))
    if not ok:
        lo = f"{'>' if low_open else '≥'} {low:g}" if math.isfinite(low) else ""
        hi = f"{'<' if high_open else '≤'} {high:g}" if math.isfinite(high) else ""
        bounds = " and ".join(b for b in (lo, hi) if b)
        raise ValueError(f"{name} must be a finite number{' ' + bounds if bounds else ''}, "
                         f"got {v!r:.40}")


def _check_list(v: Any, name: str, most: int, each: Any) -> None:
    if not isinstance(v, list) or len(v) > most:
        raise ValueError(f"{name} must be a list of at most {most} entries, got {v!r:.60}")
    for item in v:
        each(item)
