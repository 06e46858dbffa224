"""``chars``: character n-grams of each constituent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from thetanet.compounds.features.base import register
from thetanet.compounds.features.options import Rule, boolean, integer
from thetanet.compounds.features.vocab import VocabExtractor

__all__ = ["CharsExtractor"]


@register
class CharsExtractor(VocabExtractor):
    """Character n-grams (default 2–4) of ``<word>`` for each constituent, fitted vocabulary.

    Options: ``ngram_min``, ``ngram_max``, ``lowercase``, ``min_count`` (default 2),
    ``normalize`` (L2-normalise each constituent's n-gram vector).
    """

    name = "chars"
    sparse = True
    defaults: ClassVar[dict[str, Any]] = {
        "ngram_min": 2,
        "ngram_max": 4,
        "lowercase": True,
        "min_count": 2,
        "normalize": True,
    }
    option_rules: ClassVar[dict[str, Rule]] = {
        "ngram_min": integer(1, 20), "ngram_max": integer(1, 20), "lowercase": boolean,
        "min_count": integer(1, 10**9), "normalize": boolean,
    }

    @classmethod
    def combined(cls, options: Mapping[str, Any]) -> str | None:
        lo, hi = options["ngram_min"], options["ngram_max"]
        return None if lo <= hi else f"ngram_min ({lo}) must not exceed ngram_max ({hi})"

    def _compute(self, words: list[str]) -> list[dict[str, float]]:
        lo, hi = int(self.options["ngram_min"]), int(self.options["ngram_max"])
        out = []
        for w in words:
            s = f"<{w.lower() if self.options['lowercase'] else w}>"
            grams = {s[i : i + n] for n in range(lo, hi + 1) for i in range(len(s) - n + 1)}
            out.append(dict.fromkeys(grams, 1.0))
        return out
