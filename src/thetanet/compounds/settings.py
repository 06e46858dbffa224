"""What defines a trained noun-compound system besides the data: :class:`NCSettings`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from thetanet.compounds.features.neighbours import NeighbourOptions

#: |τ| of the logit adjustment accepted (beyond, π^(−τ) overflows float32 probabilities).
MAX_LOGIT_ADJUSTMENT = 10.0

__all__ = ["DEFAULT_FEATURES", "NCSettings"]

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
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden sizes must be positive, got {self.hidden}")
        if not 0 <= self.dropout < 1 or not 0 <= self.input_dropout < 1:
            raise ValueError("dropout rates must be in [0, 1)")
        if not self.seeds:
            raise ValueError("need at least one seed")
        if self.max_epochs < 1 or self.batch_size < 1:
            raise ValueError("max_epochs and batch_size must be positive")
        tau = self.logit_adjustment
        if not math.isfinite(tau) or abs(tau) > MAX_LOGIT_ADJUSTMENT:
            raise ValueError(f"logit_adjustment must be finite, in [-{MAX_LOGIT_ADJUSTMENT:g}, "
                             f"{MAX_LOGIT_ADJUSTMENT:g}], got {tau}")
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
