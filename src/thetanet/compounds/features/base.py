"""The extractor contract, the registry, and the per-word cache every extractor builds on.

An extractor turns parallel lists of modifiers and heads into a float32 matrix, one row per
compound: a block computed from the modifier, then a block computed from the head. Every
representation here is made of per-word rows, so :class:`PerWordExtractor` keeps them in
memory, and — for the expensive ones (``disk_cache = True``) — on disk in
``<cache_dir>/<name>-<key>.npz``, where ``key`` hashes the extractor, its settings and the
identity of the resource files. The file holds the word list and the rows; it is written
atomically and read with ``allow_pickle=False``; a damaged one is ignored and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from thetanet.data.paths import cache_root
from thetanet.files import atomic_write_with

__all__ = ["EXTRACTORS", "CacheDir", "Extractor", "Matrix", "PerWordExtractor",
           "available_features", "default_cache_dir", "register"]

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

    Subclasses set ``name``, ``sparse`` and ``defaults`` (the accepted options and their
    default values) and implement ``fit``/``transform``/``dim``/``get_state``/``set_state``.
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


class PerWordExtractor(Extractor):
    """An extractor built from one row per word, kept in memory and (``disk_cache``) on disk.

    Subclasses implement :meth:`_compute` (rows for words not seen yet); disk-cached ones
    also :meth:`_cache_settings`, :meth:`_pack` and :meth:`_unpack`. Bump ``cache_version``
    when the rows of the same settings change.
    """

    disk_cache: ClassVar[bool] = False
    cache_version: ClassVar[int] = 1

    def __init__(self, cache_dir: CacheDir = None, **options: Any) -> None:
        super().__init__(cache_dir, **options)
        self._mem: dict[str, Any] = {}
        self._disk_loaded = False

    # subclass hooks ------------------------------------------------------------------
    def _compute(self, words: list[str]) -> list[Any]:
        raise NotImplementedError

    def _cache_settings(self) -> dict[str, Any]:
        """What the per-word rows depend on (settings and resource identity)."""
        raise NotImplementedError

    def _pack(self, words: list[str], rows: list[Any]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _unpack(self, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
        raise NotImplementedError

    # machinery -----------------------------------------------------------------------
    def cache_path(self) -> Path | None:
        """The cache file for these settings (``None`` when caching is off)."""
        if self.cache_dir is None or not self.disk_cache:
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
            if self.disk_cache:
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
        arrays = self._pack(words, [self._mem[w] for w in words])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_with(path, lambda fh: np.savez(fh, **arrays))
        except OSError as e:
            warnings.warn(f"could not write feature cache {path}: {e}", stacklevel=3)


def _sha(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _load_npz(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # damaged/truncated/foreign file: rebuild it
        warnings.warn(f"ignoring unreadable feature cache {path}: {e}", stacklevel=3)
        return None
