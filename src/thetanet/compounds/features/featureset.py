"""The feature set: fitted extractors side by side, and building one from names or a config.

:func:`build_features` fits the chosen extractors on training compounds and returns a
:class:`FeatureSet`; ``FeatureSet.get_config()`` is plain JSON (names, options, fitted
vocabularies) from which :meth:`FeatureSet.from_config` rebuilds identical transforms.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from thetanet.compounds.features.base import (
    EXTRACTORS,
    CacheDir,
    Extractor,
    Matrix,
    available_features,
)
from thetanet.utils import is_sparse

__all__ = ["CONFIG_FORMAT", "CONFIG_VERSION", "FeatureSet", "build_features",
           "check_feature_spec", "parse_feature_spec"]

CONFIG_FORMAT = "thetanet.compounds.features"
CONFIG_VERSION = 1


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


def check_feature_spec(spec: Any) -> tuple[str, dict[str, Any]]:
    """Parse and check one feature spec (``"chars:ngram_min=2,ngram_max=3"``) by the options
    its extractor declares, without making the extractor (nothing is loaded); return its name
    and options. Problems raise one ``ValueError`` line."""
    if not isinstance(spec, str) or not 0 < len(spec) <= 1000:
        raise ValueError(f"a feature spec must be a string of 1 to 1000 characters, got "
                         f"{spec!r:.60}")
    name, options = parse_feature_spec(spec)
    cls = EXTRACTORS.get(name)
    if cls is None:
        raise ValueError(f"unknown feature extractor {name!r}; available: "
                         f"{', '.join(available_features())}")
    cls.check_options(options)
    return name, options


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
            parts.append(x.tocsr() if is_sparse(x) else np.asarray(x, dtype=np.float32))
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
        return np.hstack([p.toarray() if is_sparse(p) else p for p in parts]).astype(
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
