r"""``pair-bilinear``: products of the modifier's and the head's principal word directions.

A softmax regression over [x(m), x(h)] scores each relation with a *sum* of a modifier term
and a head term; what a relation often needs is their *interaction* ("oil" with a plant-like
modifier). This block gives the linear model a low-rank bilinear form m′ᵀ W_r h′ to fit.

In a word space of the neighbours block (:class:`~thetanet.compounds.features.neighbours.
WordSpace`: default ``minilm+gloss+wordnet``) the kernel k(w, t) = cos(w, t) over the N
distinct training modifiers t_1 … t_N is centred, K_c = H K H (H = I − 11ᵀ/N), and
eigendecomposed, K_c = V Λ Vᵀ. A word's whitened kernel-PCA coordinates are

    z_i(w) = √N · (k_c(w) · v_i) / λ_i,      i = 1 … d  (the d largest eigenvalues),

k_c(w) = k(w) − mean(k(w)) − mean_columns(K) + mean(K), so that over the training modifiers
each coordinate has mean 0 and variance 1. The heads get their own coordinates, from the
training heads. The block is the outer product, d² columns,

    b_{ij} = z_i(m) · z_j(h) / d.

Label-free (an :class:`~thetanet.compounds.features.base.Extractor`). The fitted state is
each side's training words, column means of K and projection V Λ⁻¹ √N (plain JSON), so a
loaded model computes what the trained one did. nc_notes.md, session 7: on fine_lexical
d = 12 ×3 beside the recipe's second neighbours block.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from thetanet.compounds.features.base import CacheDir, Extractor, PerWordExtractor, register
from thetanet.compounds.features.neighbours import MAX_WORD_CELLS, SPACES, WordSpace, WordTable
from thetanet.compounds.features.options import Rule, choice, integer

__all__ = ["BilinearPairsExtractor"]

_MAX_D = 64
#: Largest |entry| of a saved projection (fitted ones are far below: eigenvectors over
#: eigenvalues of at least 1e-9 of the largest, times √N).
_MAX_PROJECTION = 1e9
_MAX_WORDS = 1_000_000


@register
class BilinearPairsExtractor(Extractor):
    """Outer product of whitened kernel-PCA coordinates of modifier and head (see module).

    Options: ``d`` (coordinates per side, 1 … 64; d² columns), ``space`` (a word space of
    the neighbours block).
    """

    name = "pair-bilinear"
    sparse = False
    defaults: ClassVar[dict[str, Any]] = {"d": 12, "space": "minilm+gloss+wordnet"}
    option_rules: ClassVar[dict[str, Rule]] = {"d": integer(1, _MAX_D),
                                               "space": choice(*SPACES)}

    def __init__(self, cache_dir: CacheDir = None, **options: Any) -> None:
        super().__init__(cache_dir, **options)
        d = self.options["d"]
        if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= _MAX_D:
            raise ValueError(f"pair-bilinear: d must be an integer in [1, {_MAX_D}], "
                             f"got {d!r:.40}")
        if self.options["space"] not in SPACES:
            raise ValueError(f"pair-bilinear: space must be one of {', '.join(SPACES)}, "
                             f"got {self.options['space']!r:.60}")
        self._space = WordSpace(self.options["space"],
                                cache_dir=False if self.cache_dir is None else self.cache_dir)
        # per side (modifiers, heads): training words, column means of K, projection (N, d)
        self._sides: list[tuple[list[str], np.ndarray, np.ndarray]] = []
        self._tables: list[WordTable] = []

    @property
    def word_extractors(self) -> list[PerWordExtractor]:
        return list(self._space.extractors)

    @property
    def dim(self) -> int:
        return int(self.options["d"]) ** 2

    def fit(self, modifiers: Sequence[str], heads: Sequence[str]) -> BilinearPairsExtractor:
        mods, hs = sorted(set(modifiers)), sorted(set(heads))
        d = int(self.options["d"])
        if min(len(mods), len(hs)) <= d:
            raise ValueError(f"pair-bilinear: d = {d} needs more than {d} distinct training "
                             f"modifiers and heads, got {len(mods)} and {len(hs)}")
        self._space.fit(sorted({*mods, *hs}))
        self._sides, self._tables = [], []
        for words in (mods, hs):
            table = self._space.table(words)
            k = self._space.cosines(words, table).astype(np.float64)
            col = k.mean(axis=0)
            lam, vec = np.linalg.eigh(k - col[None, :] - col[:, None] + col.mean())
            lam, vec = lam[::-1][:d], vec[:, ::-1][:, :d]
            if not lam[-1] > 1e-9 * max(lam[0], 1e-300):
                raise ValueError(f"pair-bilinear: the training words span fewer than {d} "
                                 "directions in the word space")
            self._sides.append((words, col, vec / lam * math.sqrt(len(words))))
            self._tables.append(table)
        self.fitted = True
        return self

    def _table(self, side: int) -> WordTable:
        if len(self._tables) <= side:  # loaded: rebuilt from the per-word rows
            self._tables.append(self._space.table(self._sides[side][0]))
        return self._tables[side]

    def coordinates(self, side: int, words: Sequence[str]) -> np.ndarray:
        """z(w) of ``words`` (float64, (len(words), d)): side 0 modifiers, 1 heads."""
        self._check_fitted()
        _, col, proj = self._sides[side]
        table = self._table(side)
        # each distinct word once, in the neighbour blocks' groups: the same cosines as
        # theirs (features/cosines.py shares them) and at most MAX_WORD_CELLS held at once
        distinct, inverse = np.unique(np.asarray(list(words), dtype=object),
                                      return_inverse=True)
        out = np.zeros((len(distinct), proj.shape[1]))
        step = max(1, MAX_WORD_CELLS // max(len(table), 1))
        for s in range(0, len(distinct), step):
            k = self._space.cosines(distinct[s:s + step].tolist(), table).astype(np.float64)
            out[s:s + step] = (k - k.mean(axis=1, keepdims=True) - col[None, :]
                               + col.mean()) @ proj
        return out[inverse.reshape(-1)]

    def transform(self, modifiers: Sequence[str], heads: Sequence[str]) -> np.ndarray:
        self._check_fitted()
        if len(modifiers) != len(heads):
            raise ValueError(f"{len(modifiers)} modifiers but {len(heads)} heads")
        m, h = self.coordinates(0, modifiers), self.coordinates(1, heads)
        out = (m[:, :, None] * h[:, None, :]).reshape(len(modifiers), -1)
        return (out / math.sqrt(out.shape[1])).astype(np.float32)

    def get_state(self) -> dict[str, Any]:
        self._check_fitted()
        return {side: {"words": list(words), "mean": col.tolist(), "projection": proj.tolist()}
                for side, (words, col, proj) in zip(("modifiers", "heads"), self._sides)}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """The state :meth:`get_state` wrote (validated: ``ValueError`` names what is wrong)."""
        d = int(self.options["d"])
        sides = []
        for side in ("modifiers", "heads"):
            part = state.get(side) if isinstance(state, Mapping) else None
            if not isinstance(part, Mapping):
                raise ValueError(f"pair-bilinear: state[{side!r}] must be an object")
            words = part.get("words")
            if (not isinstance(words, list) or not d < len(words) <= _MAX_WORDS
                    or not all(isinstance(w, str) for w in words)
                    or len(set(words)) != len(words)):
                raise ValueError(f"pair-bilinear: {side} words must be more than {d} "
                                 "distinct strings")
            try:
                col = np.asarray(part.get("mean"), dtype=np.float64)
                proj = np.asarray(part.get("projection"), dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"pair-bilinear: {side} mean / projection must be numbers")\
                    from None
            if col.shape != (len(words),) or proj.shape != (len(words), d):
                raise ValueError(f"pair-bilinear: {side} mean must have {len(words)} numbers "
                                 f"and projection {len(words)} rows of {d}")
            if not (np.all(np.isfinite(col)) and np.all(np.isfinite(proj))):
                raise ValueError(f"pair-bilinear: {side} mean / projection not finite")
            # means of cosines lie in [-1, 1]; a projection beyond the bound would overflow
            if np.abs(col).max() > 1 + 1e-6 or np.abs(proj).max() > _MAX_PROJECTION:
                raise ValueError(f"pair-bilinear: {side} mean outside [-1, 1] or projection "
                                 f"beyond ±{_MAX_PROJECTION:g}")
            sides.append((words, col, proj))
        self._sides, self._tables = sides, []
        self.fitted = True
