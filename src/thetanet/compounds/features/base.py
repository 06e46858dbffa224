"""The extractor contract, the registry, and the per-word cache every extractor builds on.

An extractor turns parallel lists of modifiers and heads into a float32 matrix, one row per
compound: a block computed from the modifier, then a block computed from the head. Every
representation here is made of per-word rows, so :class:`PerWordExtractor` keeps them in
memory, and — for the expensive ones (``disk_cache = True``) — on disk in
``<cache_dir>/<name>-<key>.npz``, where ``key`` hashes the extractor, its settings, the
identity of the resource files and the file layout (:data:`CACHE_LAYOUT`). The file holds the
rows and the words, stored exactly — their UTF-8 bytes concatenated plus offsets, so two
distinct words never share an entry and the file grows with the total length of the words,
not with the longest one. It is written atomically and read by the bounded, pickle-free
:func:`thetanet.files.load_arrays`; a damaged one is ignored and rebuilt. Caches of the
earlier layout (fixed-width string arrays, in which ``"olive\\0"`` and ``"olive"`` collided)
have another key: they are never read again (delete them at will).

Only an extractor fitted in this process writes the cache (the words of its fit, and of its
transforms after it: train and val); one restored from a saved model, or made for a lookup,
only reads it. Within :func:`frozen_caches` — prediction — rows are served from the cache and
words it lacks are computed without entering it: the input of a prediction never changes the
cache, and memory holds at most :data:`RECENT_WORDS` such rows (the most recent) beyond it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from thetanet.compounds.features.options import (
    MAX_WEIGHT,
    Rule,
    anything,
    check_options,
    number,
)
from thetanet.data.paths import cache_root
from thetanet.files import ModelFileError, load_arrays, save_arrays

__all__ = ["CACHE_LAYOUT", "EXTRACTORS", "MAX_WEIGHT", "CacheDir", "Extractor", "Matrix",
           "PerWordExtractor", "available_features", "decode_strings", "default_cache_dir",
           "encode_strings", "frozen_caches", "register"]

#: Layout of the cache files, part of their key. 2: strings as UTF-8 bytes + offsets (1 held
#: fixed-width NumPy strings, which drop trailing NULs and pad every word to the longest).
CACHE_LAYOUT = 2
#: Rows of words outside the cache a frozen extractor keeps between calls (the most recent).
RECENT_WORDS = 8192
_UTF8, _OFFSETS = "__utf8", "__offsets"

CacheDir = str | os.PathLike[str] | Literal[False] | None
Matrix = sp.csr_matrix | np.ndarray

#: name → extractor class; filled by :func:`register` as the representation modules load.
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
    return cache_root() / "features"


def _resolve_cache_dir(cache_dir: CacheDir) -> Path | None:
    if cache_dir is False:
        return None
    if cache_dir is None:
        return default_cache_dir()
    return Path(cache_dir).expanduser()


class Extractor:
    """Base class: options (JSON values), ``fit``, ``transform``, state for the config.

    Subclasses set ``name``, ``sparse``, ``defaults`` (the accepted options and their
    default values) and ``option_rules`` (what each option may be, see
    :mod:`~thetanet.compounds.features.options`), and implement
    ``fit``/``transform``/``dim``/``get_state``/``set_state``. Every extractor accepts
    ``weight`` (a factor for its whole block).
    """

    name: ClassVar[str] = ""
    sparse: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {}
    option_rules: ClassVar[dict[str, Rule]] = {}

    @classmethod
    def rules(cls) -> dict[str, Rule]:
        """Every option this extractor accepts → its rule (``weight`` included; an option
        declared only by its default accepts any value: every built-in one has a rule)."""
        return {"weight": number(-MAX_WEIGHT, MAX_WEIGHT),
                **dict.fromkeys(cls.defaults, anything), **cls.option_rules}

    @classmethod
    def combined(cls, options: Mapping[str, Any]) -> str | None:
        """What is wrong with these options together (all given, defaults filled), or None."""
        return None

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """One ``ValueError`` line for an unknown option, a value outside its declared range
        or a bad combination — before anything is built or loaded."""
        check_options(cls.name, cls.rules(), options,
                      lambda given: cls.combined({**cls.defaults, **given}))

    def __init__(self, cache_dir: CacheDir = None, **options: Any) -> None:
        self.check_options(options)
        self.options: dict[str, Any] = {"weight": 1.0, **self.defaults, **options}
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

    @property
    def word_extractors(self) -> list[PerWordExtractor]:
        """Per-word extractors this one reads words through besides itself (their caches
        are frozen with it while predicting)."""
        return []

    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.fitted = True

    def feature_names(self) -> list[str]:
        return [f"{self.name}:{i}" for i in range(self.dim)]

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError(f"feature extractor {self.name!r} is not fitted")


class PerWordExtractor(Extractor):
    """An extractor built from one row per word, kept in memory and (``disk_cache``) on disk.

    Subclasses implement :meth:`_compute` (rows for words not seen yet); disk-cached ones
    also :meth:`cache_settings`, :meth:`_pack` and :meth:`_unpack`. Bump ``cache_version``
    when the rows of the same settings change.
    """

    disk_cache: ClassVar[bool] = False
    cache_version: ClassVar[int] = 1

    def __init__(self, cache_dir: CacheDir = None, **options: Any) -> None:
        super().__init__(cache_dir, **options)
        self._mem: dict[str, Any] = {}
        self._disk_loaded = False
        self.frozen = False  # see frozen_caches
        self._recent: dict[str, Any] = {}  # frozen: rows of uncached words, at most RECENT_WORDS
        self._writer = False  # fitted here: may write the disk cache

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Each subclass's ``fit`` makes its extractor a cache writer (see the module)."""
        super().__init_subclass__(**kwargs)
        fit = cls.__dict__.get("fit")
        if fit is not None:
            @functools.wraps(fit)
            def fitting(self: PerWordExtractor, *args: Any, **kw: Any) -> Any:
                self._writer = True
                return fit(self, *args, **kw)

            cls.fit = fitting  # type: ignore[method-assign]

    # subclass hooks ------------------------------------------------------------------
    def _compute(self, words: list[str]) -> list[Any]:
        raise NotImplementedError

    def cache_settings(self) -> dict[str, Any]:
        """What the per-word rows depend on (settings and resource identity)."""
        raise NotImplementedError

    def _pack(self, words: list[str], rows: list[Any]) -> dict[str, np.ndarray]:
        """The rows as arrays (string arrays allowed); the base class stores ``words``
        itself, exactly, under ``"words"`` (whatever this returns there)."""
        raise NotImplementedError

    def _unpack(self, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Inverse of :meth:`_pack`; string arrays come back as object arrays of ``str``."""
        raise NotImplementedError

    # machinery -----------------------------------------------------------------------
    def rows_key(self) -> str:
        """What the per-word rows depend on (class, cache version, settings), as one string:
        two extractors with equal keys give equal rows for every word."""
        return _sha({"name": self.name, "v": self.cache_version, **self.cache_settings()})

    def cache_path(self) -> Path | None:
        """The cache file for these settings (``None`` when caching is off)."""
        if self.cache_dir is None or not self.disk_cache:
            return None
        key = _sha({"name": self.name, "v": self.cache_version, "layout": CACHE_LAYOUT,
                    **self.cache_settings()})
        return self.cache_dir / f"{self.name}-{key[:20]}.npz"

    def rows(self, words: Iterable[str]) -> dict[str, Any]:
        """Rows for the given words, computing only the missing ones (and caching them,
        unless frozen: then they are computed for this call only)."""
        need = sorted(set(words))
        missing = [w for w in need if w not in self._mem]
        path = self.cache_path() if missing else None
        if missing and path is not None and not self._disk_loaded:
            self._disk_loaded = True
            arrays = _load_npz(path)
            if arrays is not None:
                try:
                    self._mem.update(self._unpack(arrays))
                except (KeyError, ValueError, IndexError, TypeError) as e:
                    warnings.warn(f"ignoring malformed feature cache {path}: {e}", stacklevel=2)
                before = len(missing)
                missing = [w for w in missing if w not in self._mem]
                self.stats["hits"] += before - len(missing)
        if self.frozen:
            missing = [w for w in missing if w not in self._recent]
        if not missing:
            return {w: self._mem[w] if w in self._mem else self._recent[w] for w in need}
        if self.disk_cache:
            self.stats["misses"] += len(missing)
        fresh = dict(zip(missing, self._compute(missing)))
        if self.frozen:
            out = {w: fresh[w] if w in fresh else self._mem[w] if w in self._mem
                   else self._recent[w] for w in need}
            self._recent.update(fresh)  # bounded: the oldest words go first
            for w in list(self._recent)[: max(0, len(self._recent) - RECENT_WORDS)]:
                del self._recent[w]
            return out
        self._mem.update(fresh)
        if path is not None and self._writer:
            self._save(path)
        return {w: self._mem[w] for w in need}

    def _save(self, path: Path) -> None:
        # Merge with what another process may have written meanwhile, then replace.
        current = _load_npz(path) if path.is_file() else None
        if current is not None:
            try:
                for w, row in self._unpack(current).items():
                    self._mem.setdefault(w, row)
            except (KeyError, ValueError, IndexError, TypeError):
                pass
        words = sorted(self._mem)
        arrays = {**self._pack(words, [self._mem[w] for w in words]), "words": words}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_arrays(path, encode_strings(arrays))
        except OSError as e:
            warnings.warn(f"could not write feature cache {path}: {e}", stacklevel=3)


@contextlib.contextmanager
def frozen_caches(extractors: Iterable[Extractor]) -> Iterator[None]:
    """Within the block, the per-word caches of ``extractors`` serve rows but never grow:
    words they lack are computed, kept only among the :data:`RECENT_WORDS` most recent, and
    never written. Prediction runs so — its memory is bounded whatever the input, and its
    input (whatever words it holds) never changes the cache that later runs read."""
    frozen = [e for e in extractors if isinstance(e, PerWordExtractor) and not e.frozen]
    for e in frozen:
        e.frozen = True
    try:
        yield
    finally:
        for e in frozen:
            e.frozen = False


def encode_strings(arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Numeric arrays only: each string array (or list of ``str``) ``k`` becomes
    ``k__utf8`` (the UTF-8 bytes of its items, concatenated; lone surrogates kept) and
    ``k__offsets`` (where each item starts, plus the end) — exact for every string, and as
    large as the strings' total length."""
    out: dict[str, np.ndarray] = {}
    for k, a in arrays.items():
        if isinstance(a, list) or (isinstance(a, np.ndarray) and a.dtype.kind in "UO"):
            items = [s.encode("utf-8", "surrogatepass") for s in
                     (a if isinstance(a, list) else a.tolist())]
            offsets = np.zeros(len(items) + 1, np.int64)
            offsets[1:] = np.cumsum([len(b) for b in items], dtype=np.int64)
            out[k + _UTF8] = np.frombuffer(b"".join(items), np.uint8)
            out[k + _OFFSETS] = offsets
        else:
            out[k] = np.asarray(a)
    return out


def decode_strings(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inverse of :func:`encode_strings`: string arrays back as object arrays of ``str``
    (``ValueError`` for inconsistent offsets or bytes that are not UTF-8)."""
    out = {k: v for k, v in arrays.items() if not k.endswith((_UTF8, _OFFSETS))}
    for k in arrays:
        if not k.endswith(_UTF8):
            continue
        base = k[: -len(_UTF8)]
        data, offsets = arrays[k], arrays.get(base + _OFFSETS)
        if (offsets is None or data.ndim != 1 or data.dtype != np.uint8 or offsets.ndim != 1
                or offsets.dtype.kind not in "iu" or len(offsets) < 1 or offsets[0] != 0
                or offsets[-1] != len(data) or np.any(np.diff(offsets) < 0)):
            raise ValueError(f"inconsistent string array {base!r}")
        raw = data.tobytes()
        bounds = offsets.tolist()
        items = [raw[a:b].decode("utf-8", "surrogatepass") for a, b in zip(bounds, bounds[1:])]
        strings = np.empty(len(items), dtype=object)
        strings[:] = items
        out[base] = strings
    return out


def _sha(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _load_npz(path: Path) -> dict[str, np.ndarray] | None:
    if not path.exists():
        return None
    try:
        return decode_strings(load_arrays(path))
    except (ModelFileError, ValueError) as e:  # damaged/truncated/foreign file: rebuild it
        warnings.warn(f"ignoring unreadable feature cache {path}: {e}", stacklevel=3)
        return None
