"""``words``: one-hot modifier identity and head identity."""

from __future__ import annotations

from typing import Any, ClassVar

from thetanet.compounds.features.base import register
from thetanet.compounds.features.options import Rule, boolean, integer
from thetanet.compounds.features.vocab import VocabExtractor

__all__ = ["WordsExtractor"]


@register
class WordsExtractor(VocabExtractor):
    """One-hot modifier identity and head identity (separate vocabularies, from training).

    Options: ``lowercase``; ``min_count``. Words unseen in training get an all-zero block.
    """

    name = "words"
    sparse = True
    defaults: ClassVar[dict[str, Any]] = {"lowercase": True, "min_count": 1}
    option_rules: ClassVar[dict[str, Rule]] = {"lowercase": boolean,
                                               "min_count": integer(1, 10**9)}

    def _norm(self, w: str) -> str:
        return w.lower() if self.options["lowercase"] else w

    def _compute(self, words: list[str]) -> list[dict[str, float]]:
        return [{self._norm(w): 1.0} for w in words]
