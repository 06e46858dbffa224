"""Sparse representations: per-word ``{feature: value}`` rows over fitted vocabularies.

:class:`VocabExtractor` is what ``wordnet``, ``words`` and ``chars`` share: each word gives a
dict of named features; fitting keeps the features seen in at least ``min_count`` training
compounds, separately for the modifier and the head position, and a compound's row is the
modifier's features in the first block and the head's in the second (optionally each block
L2-normalised). The fitted vocabularies are the extractor's state in the feature config.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from thetanet.compounds.features.base import PerWordExtractor

__all__ = ["VocabBlocks", "VocabExtractor"]


class VocabBlocks:
    """Two fitted feature vocabularies (modifier block, then head block)."""

    def __init__(self, mod: list[str], head: list[str]) -> None:
        self.mod = list(mod)
        self.head = list(head)
        self.mod_index = {f: i for i, f in enumerate(self.mod)}
        self.head_index = {f: i + len(self.mod) for i, f in enumerate(self.head)}

    @property
    def dim(self) -> int:
        return len(self.mod) + len(self.head)

    def names(self, prefix: str) -> list[str]:
        return [f"{prefix}:mod:{f}" for f in self.mod] + [f"{prefix}:head:{f}" for f in self.head]

    def state(self) -> dict[str, list[str]]:
        return {"modifier": self.mod, "head": self.head}

    @classmethod
    def from_counts(cls, mod: Counter[str], head: Counter[str], min_count: int) -> VocabBlocks:
        return cls(
            sorted(f for f, c in mod.items() if c >= min_count),
            sorted(f for f, c in head.items() if c >= min_count),
        )

    def assemble(
        self,
        modifiers: list[str],
        heads: list[str],
        word_feats: Mapping[str, Mapping[str, float]],
    ) -> sp.csr_matrix:
        """Compound rows from per-word ``{feature: value}`` dicts, mapped into both blocks."""
        per_word: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}

        def cols_vals(pos: int, word: str) -> tuple[np.ndarray, np.ndarray]:
            key = (pos, word)
            if key not in per_word:
                index = self.mod_index if pos == 0 else self.head_index
                pairs = [(index[f], v) for f, v in word_feats[word].items() if f in index]
                per_word[key] = (
                    np.fromiter((p[0] for p in pairs), dtype=np.int64, count=len(pairs)),
                    np.fromiter((p[1] for p in pairs), dtype=np.float32, count=len(pairs)),
                )
            return per_word[key]

        rows, cols, vals = [], [], []
        for i, (m, h) in enumerate(zip(modifiers, heads)):
            for pos, w in ((0, m), (1, h)):
                c, v = cols_vals(pos, w)
                if len(c):
                    rows.append(np.full(len(c), i, dtype=np.int64))
                    cols.append(c)
                    vals.append(v)
        return _csr(len(modifiers), self.dim, rows, cols, vals)


class VocabExtractor(PerWordExtractor):
    """Sparse blocks over fitted modifier / head vocabularies (options ``min_count`` and,
    where a subclass declares it, ``normalize``).

    Subclasses implement :meth:`_compute` (per-word rows) and may override :meth:`_values`
    (rows → ``{feature: value}`` under the current options, when the cached rows are raw).
    """

    sparse: ClassVar[bool] = True

    def __init__(self, cache_dir: Any = None, **options: Any) -> None:
        super().__init__(cache_dir, **options)
        self._vocab: VocabBlocks | None = None

    def feature_values(self, rows: Mapping[str, Any]) -> Mapping[str, Mapping[str, float]]:
        return rows

    def _features(self, words: Sequence[str]) -> Mapping[str, Mapping[str, float]]:
        return self.feature_values(self.rows(words))

    def fit(self, modifiers: Sequence[str], heads: Sequence[str]) -> VocabExtractor:
        feats = self._features([*modifiers, *heads])
        mod_c: Counter[str] = Counter()
        head_c: Counter[str] = Counter()
        for m, h in zip(modifiers, heads):
            mod_c.update(feats[m].keys())
            head_c.update(feats[h].keys())
        self._vocab = VocabBlocks.from_counts(mod_c, head_c, int(self.options["min_count"]))
        self.fitted = True
        return self

    def transform(self, modifiers: Sequence[str], heads: Sequence[str]) -> sp.csr_matrix:
        vocab = self._fitted_vocab()
        feats = self._features([*modifiers, *heads])
        x = vocab.assemble(list(modifiers), list(heads), feats)
        if self.options.get("normalize"):
            x = _normalize_blocks(x, len(vocab.mod))
        return x

    def _fitted_vocab(self) -> VocabBlocks:
        self._check_fitted()
        assert self._vocab is not None
        return self._vocab

    @property
    def dim(self) -> int:
        return self._fitted_vocab().dim

    def get_state(self) -> dict[str, Any]:
        return self._fitted_vocab().state()

    def set_state(self, state: Mapping[str, Any]) -> None:
        self._vocab = VocabBlocks(list(state["modifier"]), list(state["head"]))
        self.fitted = True

    def feature_names(self) -> list[str]:
        return self._fitted_vocab().names(self.name)


def _csr(
    n_rows: int, n_cols: int, rows: list[np.ndarray], cols: list[np.ndarray],
    vals: list[np.ndarray],
) -> sp.csr_matrix:  # fmt: skip
    if rows:
        r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    else:
        r = c = np.zeros(0, dtype=np.int64)
        v = np.zeros(0, dtype=np.float32)
    m = sp.csr_matrix((v.astype(np.float32), (r, c)), shape=(n_rows, n_cols), dtype=np.float32)
    m.sum_duplicates()
    m.sort_indices()
    return m


def _normalize_blocks(x: sp.csr_matrix, split: int) -> sp.csr_matrix:
    """L2-normalise, row by row, columns ``[:split]`` and ``[split:]`` separately (in place)."""
    if not x.nnz:
        return x
    col_block = (x.indices >= split).astype(np.int64)
    rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    sq = np.zeros((x.shape[0], 2), dtype=np.float64)
    np.add.at(sq, (rows, col_block), x.data.astype(np.float64) ** 2)
    x.data = (x.data / np.sqrt(np.maximum(sq[rows, col_block], 1e-24))).astype(np.float32)
    return x
