r"""The neighbours block: the relation histogram of a compound's nearest training compounds.

A *supervised* block: unlike an :class:`~thetanet.compounds.features.base.Extractor` it is
fitted on the training compounds (m_j, h_j) *and* their relations r_j, j = 1 … N.

Every word w has a unit vector v(w) in a word space: ``minilm+gloss`` (default)
v = (u_MiniLM(w) ⊕ u_gloss(w)) / ‖·‖, the unit static MiniLM vector beside the unit
WordNet-gloss vector (zeros when WordNet does not know w); ``minilm``: v = u_MiniLM(w);
``minilm+gloss+wordnet``: the cosine is the mean of the ``minilm+gloss`` cosine and the
cosine of the words' rank-weighted WordNet features (their senses' synsets, hypernyms and
lexicographer files, as the ``wordnet`` extractor has them), sparse over the features of
the training words — two words are close when their embeddings *or* their places in
WordNet are.
The similarity of a compound (m, h) to training compound j is the product kernel

    s_j = max(cos(m, m_j), 0) · max(cos(h, h_j), 0)

— high only when *both* constituents are close, which a linear model over [v(m), v(h)]
cannot form. With K the k training compounds of largest s_j (excluded ones left out, see
below) and the softmax weights a_j = exp(s_j / T) / Σ_{i ∈ K} exp(s_i / T), the block is

    b_r = weight · Σ_{j ∈ K, r_j = r} a_j        (one column per relation; Σ_r b_r = weight)

the similarity-weighted relation histogram of the k nearest training compounds. Ties at the
k-th similarity are broken arbitrarily (with T small such neighbours weigh ~e^(−s_max/T)).

For the training rows themselves (``transform(…, training_rows=True)``) the neighbours that
the compounds to predict cannot have are left out, so that the block means in training what
it means at prediction: ``exclude="shared-word"`` (lexical splits, where no val word is a
training word) drops the training compounds with the row's modifier as modifier or its head
as head; ``exclude="self"`` (random splits) drops the row itself (leave-one-out).

Rows are processed in chunks so that the (rows × N) similarities stay under
:data:`MAX_CELLS` cells (and the word-to-word cosines under :data:`MAX_WORD_CELLS`): memory
is bounded for 15k × 15k training rows and for streaming prediction alike. The fitted state
is the training words, pairs and relations (plain JSON); the word vectors are looked up
again through the space's extractors (and their per-word caches) when needed.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import scipy.sparse as sp

from thetanet.compounds.features.base import MAX_WEIGHT, CacheDir, Extractor, PerWordExtractor
from thetanet.compounds.features.cosines import SHARED
from thetanet.compounds.features.gloss import WordNetGlossExtractor
from thetanet.compounds.features.minilm import MiniLMStaticExtractor
from thetanet.compounds.features.wordnet import WordNetExtractor

__all__ = ["EXCLUDE", "MAX_CELLS", "MAX_WORD_CELLS", "SPACES", "WITH_WORDNET", "NeighbourBlock",
           "NeighbourBlocks", "NeighbourOptions", "WordSpace", "WordTable"]

#: Exclusion rules for the training rows (see the module).
EXCLUDE = ("shared-word", "self")
#: Word spaces → the per-word extractors whose unit rows are concatenated (the dense part).
SPACES: dict[str, tuple[type[PerWordExtractor], ...]] = {
    "minilm+gloss": (MiniLMStaticExtractor, WordNetGlossExtractor),
    "minilm": (MiniLMStaticExtractor,),
    "minilm+gloss+wordnet": (MiniLMStaticExtractor, WordNetGlossExtractor),
}
#: Spaces whose cosine is the mean of the dense part's and the WordNet features' cosines.
WITH_WORDNET = frozenset({"minilm+gloss+wordnet"})
#: Most (rows × training compounds) similarities held at once.
MAX_CELLS = 1 << 20
#: Most (query words × training words) cosines held at once, per constituent.
MAX_WORD_CELLS = 1 << 21
_MAX_K = 1_000_000
_MAX_PAIRS = 10_000_000
_MAX_BLOCKS = 8


@dataclass(frozen=True)
class NeighbourOptions:
    """The block's settings: ``k`` neighbours, softmax temperature T, the block's weight,
    the exclusion rule for training rows and the word space."""

    k: int = 50
    temperature: float = 0.05
    weight: float = 5.0
    exclude: str = "shared-word"
    space: str = "minilm+gloss"

    def __post_init__(self) -> None:
        k, t, w = self.k, self.temperature, self.weight
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= _MAX_K:
            raise ValueError(f"neighbours: k must be an integer in [1, {_MAX_K}], got {k!r:.40}")
        if not _real(t) or not 0 < t < math.inf:
            raise ValueError(f"neighbours: temperature must be a finite number > 0, got "
                             f"{t!r:.40}")
        if not _real(w) or not abs(w) <= MAX_WEIGHT:
            raise ValueError(f"neighbours: weight must be a number in [-{MAX_WEIGHT:g}, "
                             f"{MAX_WEIGHT:g}], got {w!r:.40}")
        if self.exclude not in EXCLUDE:
            raise ValueError(f"neighbours: exclude must be one of {', '.join(EXCLUDE)}, got "
                             f"{self.exclude!r:.40}")
        if self.space not in SPACES:
            raise ValueError(f"neighbours: space must be one of {', '.join(SPACES)}, got "
                             f"{self.space!r:.40}")

    @classmethod
    def parse(cls, spec: str) -> NeighbourOptions:
        """``"k=50,temperature=0.05,weight=5,exclude=shared-word,space=minilm+gloss"``
        (any subset, in any order; ``""`` = all defaults). Bad specs raise ``ValueError``."""
        if not isinstance(spec, str):
            raise ValueError(f"neighbours must be a string of key=value options, got "
                             f"{type(spec).__name__}")
        known = [f.name for f in fields(cls)]
        options: dict[str, Any] = {}
        for item in filter(None, (s.strip() for s in spec.split(","))):
            key, eq, value = (p.strip() for p in item.partition("="))
            if not eq or key not in known:
                raise ValueError(f"neighbours: bad option {item!r:.60} (expected key=value, "
                                 f"key one of {', '.join(known)})")
            if key in options:
                raise ValueError(f"neighbours: option {key!r} given twice")
            try:
                options[key] = json.loads(value) if key not in ("exclude", "space") else value
            except json.JSONDecodeError:
                raise ValueError(f"neighbours: {key} must be a number, got {value!r:.40}"
                                 ) from None
        if isinstance(options.get("temperature"), int):
            options["temperature"] = float(options["temperature"])
        if isinstance(options.get("weight"), int):
            options["weight"] = float(options["weight"])
        return cls(**options)

    @classmethod
    def parse_many(cls, spec: str) -> list[NeighbourOptions]:
        """Several blocks, their specs separated by ``;`` (e.g. the same histogram in two
        word spaces); one spec (``""`` included) is one block."""
        if not isinstance(spec, str):
            return [cls.parse(spec)]  # the same clear error
        parts = [p.strip() for p in spec.split(";")]
        if len(parts) > 1 and not all(parts):
            raise ValueError("neighbours: an empty block between ';' (each block needs at "
                             "least one option when there are several)")
        if len(parts) > _MAX_BLOCKS:
            raise ValueError(f"neighbours: at most {_MAX_BLOCKS} blocks, got {len(parts)}")
        return [cls.parse(p) for p in parts]


def _real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), np.float32(1e-9))


@dataclass(frozen=True)
class WordTable:
    """The training words of one position in a space: their unit dense vectors and, for a
    space :data:`WITH_WORDNET`, their unit WordNet rows over ``vocab`` (their features);
    ``words``, when given, names them (so products with the table can be shared)."""

    dense: np.ndarray
    wordnet: sp.csr_matrix | None = None
    vocab: Mapping[str, int] | None = None
    words: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.dense)


class WordSpace:
    """Unit word vectors v(w) (see the module) from the per-word rows of extractors.

    An extractor of ``share`` (e.g. the classifier's own feature extractors) whose rows are
    the ones needed — same class, same cache settings — is used instead of a new one, so a
    word is computed (and cached) once.
    """

    def __init__(self, space: str, *, cache_dir: CacheDir = None,
                 share: Sequence[Extractor] = ()) -> None:
        self.space = space
        self.extractors: list[PerWordExtractor] = []
        kinds = SPACES[space] + ((WordNetExtractor,) if space in WITH_WORDNET else ())
        for kind in kinds:
            own = kind(cache_dir=cache_dir)
            match = [e for e in share if type(e) is kind
                     and e.cache_settings() == own.cache_settings()]
            self.extractors.append(match[0] if match else own)
        # the WordNet rows' values under the default options (rank weighting), whatever the
        # options of a shared extractor (its raw rows, the sense ranks, are the same)
        self._wordnet = WordNetExtractor(cache_dir=False) if space in WITH_WORDNET else None
        self._dense = self.extractors[:len(SPACES[space])]

    def fit(self, words: Sequence[str]) -> WordSpace:
        """Make the space's own (unshared) extractors fitted here: they cache ``words``."""
        for e in self.extractors:
            if not e.fitted:
                e.fit(list(words), [])
        return self

    def vectors(self, words: Sequence[str]) -> np.ndarray:
        """v(w) of the dense part for each word: float32, shape (len(words), d)."""
        parts = []
        for e in self._dense:
            rows = e.rows(words)
            parts.append(_unit(np.stack([rows[w] for w in words]).astype(np.float32))
                         if len(words) else np.zeros((0, 1), np.float32))
        return _unit(np.hstack(parts)) if len(words) else np.zeros((0, 1), np.float32)

    def table(self, words: Sequence[str]) -> WordTable:
        """The vectors of (training) ``words``, to compare other words with."""
        if self._wordnet is None:
            return WordTable(self.vectors(words), words=tuple(words))
        feats = self._wordnet_values(words)
        vocab = {f: i for i, f in enumerate(sorted({f for w in words for f in feats[w]}))}
        return WordTable(self.vectors(words), self._wordnet_rows(words, feats, vocab), vocab,
                         tuple(words))

    def cosines(self, words: Sequence[str], table: WordTable) -> np.ndarray:
        """cos(w, t) for each of ``words`` (rows) and each word t of ``table``: float32."""
        dense = self._shared(tuple(e.rows_key() for e in self._dense), words, table,
                             lambda: self.vectors(words) @ table.dense.T)
        if table.wordnet is not None and table.vocab is not None:
            vocab, wordnet = table.vocab, table.wordnet
            key = ("wordnet", self.extractors[-1].rows_key(), self._wordnet.rows_key())
            cos = dense + self._shared(key, words, table, lambda: (self._wordnet_rows(
                words, self._wordnet_values(words), vocab) @ wordnet.T).toarray())
            cos *= np.float32(0.5)
            return cos
        return dense.copy() if not dense.flags.writeable else dense

    @staticmethod
    def _shared(key: tuple[str, ...], words: Sequence[str], table: WordTable,
                compute: Callable[[], np.ndarray]) -> np.ndarray:
        """``compute()``, a product of ``words`` with ``table`` depending on the extractors'
        ``key`` besides: shared (read-only) with other spaces comparing the same words with
        the same table words (fine_lexical: 3 blocks), if the table names them and it is small."""
        if not table.words or len(words) * len(table) > MAX_WORD_CELLS:  # kept: bounded
            return compute()
        return SHARED.get((key, tuple(words), table.words), compute)

    def _wordnet_values(self, words: Sequence[str]) -> Mapping[str, Mapping[str, float]]:
        if self._wordnet is None:
            raise RuntimeError(f"the word space {self.space!r} has no WordNet features")
        return self._wordnet.feature_values(self.extractors[-1].rows(words))

    @staticmethod
    def _wordnet_rows(words: Sequence[str], feats: Mapping[str, Mapping[str, float]],
                      vocab: Mapping[str, int]) -> sp.csr_matrix:
        """Unit rows over ``vocab``; a word's norm counts all its features (a true cosine
        with any word whose features are all in ``vocab``, as the training words' are)."""
        indptr, cols, vals = [0], [], []
        for w in words:
            f = feats[w]
            norm = math.sqrt(sum(v * v for v in f.values())) or 1.0
            kept = [(vocab[k], v / norm) for k, v in f.items() if k in vocab]
            cols += [c for c, _ in kept]
            vals += [v for _, v in kept]
            indptr.append(len(cols))
        return sp.csr_matrix((np.asarray(vals, np.float32), np.asarray(cols, np.int64),
                              np.asarray(indptr, np.int64)), shape=(len(words), len(vocab)))


class NeighbourBlock:
    """The similarity-weighted relation histogram of the k nearest training compounds."""

    def __init__(self, options: NeighbourOptions, n_labels: int, *, cache_dir: CacheDir = None,
                 share: Sequence[Extractor] = ()) -> None:
        if n_labels < 1:
            raise ValueError("the neighbours block needs at least one relation")
        self.options = options
        self.n_labels = int(n_labels)
        self.space = WordSpace(options.space, cache_dir=cache_dir, share=share)
        self.fitted = False
        self._mod_words: list[str] = []
        self._head_words: list[str] = []
        self._mi = self._hi = self._y = np.zeros(0, np.int64)
        self._tables: tuple[WordTable, WordTable] | None = None  # the training words

    @property
    def dim(self) -> int:
        return self.n_labels

    @property
    def extractors(self) -> list[PerWordExtractor]:
        """The extractors the block reads words through (to freeze during prediction)."""
        return list(self.space.extractors)

    def fit(self, modifiers: Sequence[str], heads: Sequence[str], labels: Any
            ) -> NeighbourBlock:
        """Keep the training compounds and their relations (indices in [0, n_labels))."""
        y = np.asarray(labels, dtype=np.int64)
        if not len(modifiers) == len(heads) == len(y):
            raise ValueError(f"{len(modifiers)} modifiers, {len(heads)} heads, {len(y)} labels")
        if len(y) == 0:
            raise ValueError("the neighbours block needs training compounds")
        if y.min() < 0 or y.max() >= self.n_labels:
            raise ValueError(f"labels must be in [0, {self.n_labels})")
        self._mod_words, self._mi = _index(modifiers)
        self._head_words, self._hi = _index(heads)
        self._y = y
        self._tables = None
        self.space.fit(sorted(set(self._mod_words) | set(self._head_words)))
        self.fitted = True
        return self

    def _fitted_tables(self) -> tuple[WordTable, WordTable]:
        if not self.fitted:
            raise RuntimeError("the neighbours block is not fitted")
        if self._tables is None:
            self._tables = (self.space.table(self._mod_words),
                            self.space.table(self._head_words))
        return self._tables

    def group_rows(self) -> int:
        """How many compounds :meth:`transform` compares in one go (their words' cosines
        held at once): a caller passing at most this many shares the cosines with other
        blocks comparing the same words (features/cosines.py)."""
        tm, th = self._fitted_tables()
        return max(1, MAX_WORD_CELLS // max(len(tm), len(th), 1))

    def transform(self, modifiers: Sequence[str], heads: Sequence[str], *,
                  training_rows: bool = False, first_row: int = 0) -> np.ndarray:
        """The block b for each compound, float32 (n, n_labels). ``training_rows``: these
        are the training compounds, in fit order — apply the exclusion rule; from the
        ``first_row``-th on (a part of them: the caller covers all of them)."""
        tm, th = self._fitted_tables()
        mods, hs = list(modifiers), list(heads)
        if len(mods) != len(hs):
            raise ValueError(f"{len(mods)} modifiers but {len(hs)} heads")
        n, big, f = len(mods), len(self._y), int(first_row)
        if training_rows and (f < 0 or f + n > big or _index(mods, self._mod_words)[1].tolist()
                              != self._mi[f:f + n].tolist() or _index(hs, self._head_words)[1]
                              .tolist() != self._hi[f:f + n].tolist()):
            raise ValueError("training_rows: these are not the compounds the block was fitted on")
        out = np.zeros((n, self.n_labels), np.float32)
        # groups of rows whose word-to-word cosines fit; within them, chunks of rows
        group = self.group_rows()
        chunk = max(1, MAX_CELLS // big)
        for g0 in range(0, n, group):
            g1 = min(n, g0 + group)
            cm, im = self._cosines(mods[g0:g1], tm)
            ch, ih = self._cosines(hs[g0:g1], th)
            for r0 in range(g0, g1, chunk):
                r1 = min(g1, r0 + chunk)
                s = cm[im[r0 - g0:r1 - g0]][:, self._mi] * ch[ih[r0 - g0:r1 - g0]][:, self._hi]
                if training_rows:
                    self._exclude(s, r0 + f, r1 + f)
                out[r0:r1] = self._histogram(s)
        return out

    def _cosines(self, words: list[str], table: WordTable) -> tuple[np.ndarray, np.ndarray]:
        """max(cos(w, t), 0) for the distinct ``words`` against the training words, and each
        word's row in it."""
        distinct, inverse = np.unique(np.asarray(words, dtype=object), return_inverse=True)
        cos = self.space.cosines(distinct.tolist(), table)
        return np.maximum(cos, 0, out=cos), inverse.reshape(-1)  # cos: our own copy

    def _exclude(self, s: np.ndarray, r0: int, r1: int) -> None:
        """Training rows r0 … r1−1 lose the neighbours they could not have (in place)."""
        rows = np.arange(r1 - r0)
        if self.options.exclude == "self":
            s[rows, rows + r0] = -np.inf
        else:
            shared = ((self._mi[r0:r1, None] == self._mi[None, :])
                      | (self._hi[r0:r1, None] == self._hi[None, :]))
            s[shared] = -np.inf

    def _histogram(self, s: np.ndarray) -> np.ndarray:
        """b for each row of similarities ``s`` (−inf: excluded)."""
        k, t = min(self.options.k, s.shape[1]), self.options.temperature
        if k < s.shape[1]:
            idx = np.argpartition(-s, k - 1, axis=1)[:, :k]
            top = np.take_along_axis(s, idx, axis=1)
        else:
            idx, top = np.broadcast_to(np.arange(k), s.shape), s
        best = top.max(axis=1, keepdims=True)
        alive = np.isfinite(best)  # a row with every neighbour excluded gets zeros
        w = np.exp((top - np.where(alive, best, 0)) / np.float32(t)) * alive
        w /= np.maximum(w.sum(axis=1, keepdims=True), np.float32(1e-30))
        rows = np.repeat(np.arange(len(s)) * self.n_labels, idx.shape[1])
        hist = np.bincount(rows + self._y[idx].ravel(), weights=w.ravel(),
                           minlength=len(s) * self.n_labels)
        return (self.options.weight * hist).reshape(len(s), self.n_labels).astype(np.float32)

    # -- persistence ---------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """The fitted block as plain JSON: training words, pairs (indices) and relations."""
        if not self.fitted:
            raise RuntimeError("the neighbours block is not fitted")
        return {"modifier_words": list(self._mod_words), "head_words": list(self._head_words),
                "modifiers": self._mi.tolist(), "heads": self._hi.tolist(),
                "labels": self._y.tolist()}

    @classmethod
    def from_state(cls, options: NeighbourOptions, n_labels: int, state: Mapping[str, Any], *,
                   cache_dir: CacheDir = None, share: Sequence[Extractor] = ()
                   ) -> NeighbourBlock:
        """The block :meth:`get_state` describes (validated: ``ValueError`` names what is
        wrong). Its extractors only read the per-word caches (they were not fitted here)."""
        if not isinstance(state, Mapping):
            raise ValueError("neighbours: the state must be an object")
        block = cls(options, n_labels, cache_dir=cache_dir, share=share)
        words = {}
        for key in ("modifier_words", "head_words"):
            v = state.get(key)
            if (not isinstance(v, list) or not 0 < len(v) <= _MAX_PAIRS
                    or not all(isinstance(w, str) for w in v) or len(set(v)) != len(v)):
                raise ValueError(f"neighbours: {key!r} must be a list of distinct words")
            words[key] = v
        arrays = {}
        for key, most in (("modifiers", len(words["modifier_words"])),
                          ("heads", len(words["head_words"])), ("labels", n_labels)):
            v = state.get(key)
            if (not isinstance(v, list) or not 0 < len(v) <= _MAX_PAIRS
                    or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < most
                               for i in v)):
                raise ValueError(f"neighbours: {key!r} must be a list of indices in [0, {most})")
            arrays[key] = np.asarray(v, dtype=np.int64)
        if not len(arrays["modifiers"]) == len(arrays["heads"]) == len(arrays["labels"]):
            raise ValueError("neighbours: one modifier, head and label per training compound")
        block._mod_words, block._head_words = words["modifier_words"], words["head_words"]
        block._mi, block._hi, block._y = arrays["modifiers"], arrays["heads"], arrays["labels"]
        block.fitted = True
        return block


class NeighbourBlocks:
    """One or more neighbour blocks side by side (settings ``"spec; spec"``): their columns
    in order. The state of a single block is that block's (the format before several)."""

    def __init__(self, blocks: Sequence[NeighbourBlock]) -> None:
        if not blocks:
            raise ValueError("NeighbourBlocks needs at least one block")
        self.blocks = list(blocks)

    @classmethod
    def create(cls, options: Sequence[NeighbourOptions], n_labels: int, *,
               cache_dir: CacheDir = None, share: Sequence[Extractor] = ()
               ) -> NeighbourBlocks:
        return cls([NeighbourBlock(o, n_labels, cache_dir=cache_dir, share=share)
                    for o in options])

    @property
    def dim(self) -> int:
        return sum(b.dim for b in self.blocks)

    @property
    def extractors(self) -> list[PerWordExtractor]:
        return [e for b in self.blocks for e in b.extractors]

    def fit(self, modifiers: Sequence[str], heads: Sequence[str], labels: Any
            ) -> NeighbourBlocks:
        for b in self.blocks:
            b.fit(modifiers, heads, labels)
        return self

    def group_rows(self) -> int:
        """The fewest compounds any block compares in one go (see NeighbourBlock)."""
        return min(b.group_rows() for b in self.blocks)

    def transform(self, modifiers: Sequence[str], heads: Sequence[str], *,
                  training_rows: bool = False, first_row: int = 0) -> np.ndarray:
        parts = [b.transform(modifiers, heads, training_rows=training_rows, first_row=first_row)
                 for b in self.blocks]
        return parts[0] if len(parts) == 1 else np.hstack(parts)

    def get_state(self) -> dict[str, Any]:
        if len(self.blocks) == 1:
            return self.blocks[0].get_state()
        return {"blocks": [b.get_state() for b in self.blocks]}

    @classmethod
    def from_state(cls, options: Sequence[NeighbourOptions], n_labels: int,
                   state: Mapping[str, Any], *, cache_dir: CacheDir = None,
                   share: Sequence[Extractor] = ()) -> NeighbourBlocks:
        """The blocks :meth:`get_state` describes, one state per options (validated)."""
        held = state.get("blocks") if isinstance(state, Mapping) else None
        if len(options) == 1 and isinstance(held, list):
            raise ValueError(f"neighbours: the settings name 1 block, the saved state holds "
                             f"{len(held)}")
        if len(options) == 1:
            states: Any = [state]
        else:
            states = state.get("blocks") if isinstance(state, Mapping) else None
            if not isinstance(states, list) or len(states) != len(options):
                raise ValueError(f"neighbours: the state must hold {len(options)} blocks")
        return cls([NeighbourBlock.from_state(o, n_labels, st, cache_dir=cache_dir, share=share)
                    for o, st in zip(options, states)])


def _index(words: Sequence[str], vocab: list[str] | None = None
           ) -> tuple[list[str], np.ndarray]:
    """Distinct words (sorted, unless ``vocab`` is given) and each word's index (−1: none)."""
    vocab = sorted(set(words)) if vocab is None else vocab
    at = {w: i for i, w in enumerate(vocab)}
    return vocab, np.fromiter((at.get(w, -1) for w in words), np.int64, len(words))
