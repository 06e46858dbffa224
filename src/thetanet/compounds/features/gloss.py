"""``wordnet-gloss``: MiniLM static vectors of what WordNet says each constituent means."""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np

from thetanet.compounds.features.base import CacheDir, register
from thetanet.compounds.features.minilm import MiniLMStaticExtractor
from thetanet.compounds.features.options import Rule, boolean, integer, nullable, text
from thetanet.compounds.features.wordnet import WordNetExtractor

__all__ = ["WordNetGlossExtractor"]

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
    option_rules: ClassVar[dict[str, Rule]] = {
        **MiniLMStaticExtractor.option_rules, "senses": integer(1, 1000), "lemmas": boolean,
        "wordnet_dir": nullable(text()),
    }

    def __init__(self, cache_dir: CacheDir = None, **options: Any) -> None:
        super().__init__(cache_dir, **options)
        senses = self.options["senses"]
        if isinstance(senses, bool) or not isinstance(senses, int) or senses < 1:
            raise ValueError(f"wordnet-gloss senses must be a positive integer, got {senses!r}")
        self._wordnet = WordNetExtractor(cache_dir=False, wordnet_dir=self.options["wordnet_dir"])

    @property
    def wordnet(self) -> WordNetExtractor:
        """The WordNet lookup the glosses come from (its senses and last-word back-off)."""
        return self._wordnet

    def cache_settings(self) -> dict[str, Any]:
        return {
            **super().cache_settings(),
            **self._wordnet.cache_settings(),
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
