"""Pluggable feature extractors for noun compounds ``(modifier, head)``.

Each extractor turns parallel lists of modifiers and heads into a float32 matrix, one row
per compound, with separate column blocks for the modifier and the head:

``wordnet``        sparse: the (reflexive) hypernym closure of each constituent's noun
                   synsets (``food.n.01`` …) and their lexicographer files (``noun.food``)
``minilm-static``  dense: all-MiniLM-L6-v2 input embeddings, mean over word-pieces (384 each)
``wordnet-gloss``  dense: the same embeddings averaged over each constituent's WordNet glosses
``words``          sparse: one-hot modifier identity and head identity
``chars``          sparse: character 2–4-grams of each constituent
``pair-bilinear``  dense: products of the modifier's and the head's top kernel-PCA
                   coordinates in a word space of the neighbours block (:mod:`.bilinear`)

Beside them, :mod:`.neighbours` holds a *supervised* block, fitted on the training compounds
and their relations (so not an extractor: ``NCSettings.neighbours`` turns it on): the
relation histogram of each compound's nearest training compounds.

One module per representation; :mod:`.base` holds the extractor contract, the registry and
the per-word cache (memory, and on disk for the expensive three: ``cache_root()/features``),
:mod:`.vocab` the fitted vocabularies the sparse ones share, :mod:`.featureset` the
:class:`FeatureSet` and :func:`build_features`. A new representation is a module with a
``@register`` class, imported below.
"""

from thetanet.compounds.features.base import (
    EXTRACTORS,
    Extractor,
    PerWordExtractor,
    available_features,
    default_cache_dir,
    register,
)
from thetanet.compounds.features.bilinear import BilinearPairsExtractor
from thetanet.compounds.features.chars import CharsExtractor
from thetanet.compounds.features.featureset import (
    FeatureSet,
    build_features,
    parse_feature_spec,
)
from thetanet.compounds.features.gloss import WordNetGlossExtractor
from thetanet.compounds.features.minilm import MiniLMStaticExtractor
from thetanet.compounds.features.minilm_context import (  # noqa: F401  (registers)
    MiniLMContextExtractor,
    MiniLMParaphraseExtractor,
    MiniLMWordExtractor,
)
from thetanet.compounds.features.neighbours import NeighbourBlock, NeighbourOptions
from thetanet.compounds.features.vocab import VocabExtractor
from thetanet.compounds.features.wordnet import WordNetExtractor
from thetanet.compounds.features.words import WordsExtractor

__all__ = [
    "EXTRACTORS",
    "BilinearPairsExtractor",
    "CharsExtractor",
    "Extractor",
    "FeatureSet",
    "MiniLMStaticExtractor",
    "NeighbourBlock",
    "NeighbourOptions",
    "PerWordExtractor",
    "VocabExtractor",
    "WordNetExtractor",
    "WordNetGlossExtractor",
    "WordsExtractor",
    "available_features",
    "build_features",
    "default_cache_dir",
    "parse_feature_spec",
    "register",
]
