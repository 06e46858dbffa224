"""Which words a fitted feature set knows: a prediction for unknown words is a guess.

A word is known to a representation when it carries information there:

- ``wordnet`` and ``wordnet-gloss``: WordNet has noun senses for it (also through the
  last-word back-off of :meth:`WordNetExtractor.lookup`);
- ``minilm-static``: it is one whole word-piece of the tokenizer (the table learnt a vector
  for it; a made-up word is cut into pieces);
- ``words``, ``chars`` and other vocabulary blocks: it has a feature in the fitted vocabulary;
- any other representation (the contextual MiniLM ones) is taken to know every word.

:func:`known_words` says, per compound and position, whether any representation of the set
knows the word; ``nc predict`` counts the compounds with a word no representation knows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from thetanet.compounds.embeddings import StaticEmbeddings
from thetanet.compounds.features import (
    Extractor,
    FeatureSet,
    MiniLMStaticExtractor,
    VocabExtractor,
    WordNetExtractor,
    WordNetGlossExtractor,
)
from thetanet.compounds.features.base import frozen_caches
from thetanet.compounds.features.minilm_context import MiniLMWordExtractor

__all__ = ["known_words"]


def known_words(features: FeatureSet, modifiers: Sequence[str],
                heads: Sequence[str]) -> np.ndarray:
    """Boolean array (n, 2): whether some representation knows the modifier (column 0) and
    the head (column 1) of each compound."""
    words = sorted(set(modifiers) | set(heads))
    known = dict.fromkeys(words, False)
    # the glosses' own WordNet lookup answers for them; frozen, asking never grows its cache
    inner = [e.wordnet for e in features.extractors if isinstance(e, WordNetGlossExtractor)]
    with frozen_caches(inner):
        for extractor in features.extractors:
            todo = [w for w in words if not known[w]]
            if not todo:
                break
            test = _tester(extractor)
            for w in todo:
                known[w] = test(w)
    return np.array([[known[m], known[h]] for m, h in zip(modifiers, heads)],
                    dtype=bool).reshape(len(modifiers), 2)


def _tester(e: Extractor) -> Callable[[str], bool]:
    if isinstance(e, WordNetExtractor):
        return _wordnet_knows(e)
    if isinstance(e, WordNetGlossExtractor):
        return _wordnet_knows(e.wordnet)
    if isinstance(e, MiniLMStaticExtractor) and not isinstance(e, MiniLMWordExtractor):
        tok = StaticEmbeddings.load(e.options["model"]).tokenizer
        unk = tok.token_to_id("[UNK]")

        def one_piece(word: str) -> bool:
            ids = tok.encode(word, add_special_tokens=False).ids
            return len(ids) == 1 and ids[0] != unk
        return one_piece
    if isinstance(e, VocabExtractor):
        def in_vocabulary(word: str) -> bool:
            return e.transform([word], [word]).nnz > 0
        return in_vocabulary
    return lambda word: True


def _wordnet_knows(e: WordNetExtractor) -> Callable[[str], bool]:
    def has_senses(word: str) -> bool:
        # an unknown word gets only the marker features "<none>" / "<backoff>"
        return any(not f.startswith("<") for f in e.word_features(word))
    return has_senses
