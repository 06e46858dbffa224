"""Lexical splits, second push (issue 16): WordNet extras, nearest neighbours, resplits (val).

Each configuration adds blocks to the split's chosen recipe (``recipes.py``) and reports val
weighted-F1 per seed (mean ± std), and optionally on lexically disjoint resplits of train + val
(``--resplits N``: every word goes to one side at random, p = 0.65; compounds with both words
on the train side train, both on the other side validate, mixed ones are dropped — the
condition of the lexical splits, with other words). The test split is never read.

Three kinds of blocks are tried:

- label-free WordNet extras, as experimental extractors registered here (not in the package:
  none helped): ``wordnet-morph`` (derivationally related verbs of the first senses, with their
  hypernyms and lexicographer files; agentive/nominal suffixes of the last word; lexicographer
  files of the word's verb/adjective senses; topic domains; whether it has meronyms/holonyms)
  and ``wordnet-general`` (the recipe's WordNet block keeping only features shared by at least
  ``min_words`` distinct training words — no word-identity leaves);
- label-derived blocks fitted on train only: the similarity-weighted relation histogram of
  the k nearest training compounds, similarity max(cos(m, m'), 0) · max(cos(h, h'), 0) — a
  product kernel the linear model cannot form — softmax-weighted with temperature T; for a
  training row, neighbours sharing its modifier or its head are left out (every val word is
  unseen). Since session 4 that block is the package's ``neighbours`` setting
  (``thetanet.compounds.features.neighbours``): the ``+ kNN`` configurations and
  ``--neighbours SPEC …`` (each SPEC a configuration "recipe + neighbours SPEC"; ``off``:
  the recipe without the block) use it. The ``emb+wn`` space and the relation prototypes
  cos(m, μ_m^r) · cos(h, μ_h^r) stay here (:class:`LabelBlocks`, a classifier subclass);
- label-free pair features (session 7): the package's ``pair-bilinear`` extractor, outer
  products of the two words' top kernel-PCA coordinates.

    OPENBLAS_NUM_THREADS=1 python benchmarks/nc_lexical.py [--splits ...] [--configs ...]
        [--neighbours SPEC ...] [--seeds 0 1 2] [--resplits 4]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from collections import Counter
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from thetanet.blockmatrix import BlockMatrix
from thetanet.compounds.features import build_features, register
from thetanet.compounds.features.vocab import VocabBlocks
from thetanet.compounds.features.wordnet import WordNetExtractor
from thetanet.compounds.recipes import recipe
from thetanet.compounds.system import NCClassifier, NCSettings
from thetanet.data.tratz import labels_for, load_split
from thetanet.data.tsv import Compounds

SUFFIXES = ("er", "or", "ist", "ian", "ant", "ent", "ee", "eer", "ing", "ion", "ment", "ness",
            "ity", "ism", "ery", "ry", "age", "ship", "hood", "dom", "al", "ure", "ics", "logy",
            "man", "men", "ware", "s", "ance", "ence", "cy", "ty", "ine", "ite", "ette")
_TOK = re.compile(r"[\s_\-]+")


@register
class WordNetMorph(WordNetExtractor):
    """Experimental: derivations, suffixes, other parts of speech, domains (see module doc)."""

    name = "wordnet-morph"
    defaults: ClassVar[dict[str, Any]] = {**WordNetExtractor.defaults, "senses": 3,
                                          "groups": ["drv", "suffix", "pos"], "verb_hyper": True}
    disk_cache = False

    def _compute(self, words: list[str]) -> list[dict[str, float]]:
        wn, k = self._reader(), int(self.options["senses"])
        groups = self.options["groups"]
        groups = groups.split("+") if isinstance(groups, str) else groups
        out = []
        for w in words:
            feats: dict[str, float] = {}

            def put(f: str, r: int, feats: dict[str, float] = feats) -> None:
                feats[f] = min(feats.get(f, float(r)), float(r))

            synsets, _ = self.lookup(w)
            parts = [p for p in _TOK.split(w.lower()) if p]
            last = parts[-1] if parts else ""
            for r, s in enumerate(synsets[:k]):
                if "drv" in groups:
                    for lem in s.lemmas():
                        for d in (d.synset() for d in lem.derivationally_related_forms()):
                            if d.pos() != "v":
                                continue
                            put("<drv>", 0)
                            put(f"drv:{d.name()}", r)
                            put(f"drvlex:{d.lexname()}", r)
                            put(f"drvlex:{s.lexname()}>{d.lexname()}", r)
                            if self.options["verb_hyper"]:
                                for h in d.closure(lambda x: x.hypernyms()):
                                    put(f"drv:{h.name()}", r)
                if "domain" in groups:
                    for d in s.topic_domains() + s.region_domains() + s.usage_domains():
                        put(f"dom:{d.name()}", r)
                if "mero" in groups:
                    for rel in ("part_holonyms", "substance_holonyms", "member_holonyms",
                                "part_meronyms", "substance_meronyms", "member_meronyms"):
                        if getattr(s, rel)():
                            put(f"has:{rel}", r)
            if "suffix" in groups:
                for suf in SUFFIXES:
                    if last.endswith(suf) and len(last) > len(suf) + 2:
                        put(f"suf:{suf}", 0)
            if "pos" in groups:
                for pos in ("v", "a"):
                    for r, s in enumerate(wn.synsets(last, pos=pos)[:k]):
                        put(f"{pos}lex:{s.lexname()}", r)
            out.append(feats or {"<nothing>": 0.0})
        return out


@register
class WordNetGeneral(WordNetExtractor):
    """Experimental: WordNet features of at least ``min_words`` distinct training words."""

    name = "wordnet-general"
    defaults: ClassVar[dict[str, Any]] = {**WordNetExtractor.defaults, "min_words": 2}

    def fit(self, modifiers: Any, heads: Any) -> WordNetGeneral:
        feats = self._features([*modifiers, *heads])
        k = int(self.options["min_words"])
        counts = [Counter(f for w in set(ws) for f in feats[w]) for ws in (modifiers, heads)]
        self._vocab = VocabBlocks(*(sorted(f for f, c in n.items() if c >= k) for n in counts))
        self.fitted = True
        return self


def _unit(v: Any) -> Any:
    if sp.issparse(v):
        n = np.sqrt(np.asarray(v.multiply(v).sum(axis=1)).ravel())
        return sp.diags(1.0 / np.maximum(n, 1e-9)) @ v
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)


class WordSpace:
    """Unit word vectors: MiniLM static ⊕ gloss (``emb``), WordNet closure (``wn``), or both."""

    def __init__(self, space: str, words: list[str]) -> None:
        self.space = space
        self.dense = build_features(["minilm-static", "wordnet-gloss"], (words, words))
        self.wn = build_features(["wordnet"], (words, words)) if "wn" in space else None

    def sims(self, a: list[str], b: list[str]) -> np.ndarray:
        """cos(a_i, b_j) in the space (the mean of the two spaces' cosines for ``emb+wn``)."""
        out = np.zeros((len(a), len(b)), np.float32)
        if "emb" in self.space:
            va, vb = (self._emb(ws) for ws in (a, b))
            out += va @ vb.T
        if self.wn is not None:
            half = len(self.wn.extractors[0].get_state()["modifier"])
            wa, wb = (_unit(self.wn.transform(ws, ws)[:, :half]) for ws in (a, b))
            out += (wa @ wb.T).toarray()
        return out / (2 if self.space == "emb+wn" else 1)

    def _emb(self, ws: list[str]) -> np.ndarray:
        parts = self.dense.transform_parts(ws, ws)
        d = parts[0].shape[1] // 2  # the modifier halves: the words' own vectors
        return _unit(np.hstack([_unit(parts[0][:, :d]), _unit(parts[1][:, :d])]))


class LabelBlocks:
    """Label-derived blocks fitted on train only: kNN relation histogram, prototypes."""

    def __init__(self, train: Compounds, y: np.ndarray, n_labels: int, k: int = 50,
                 temp: float = 0.05, knn: float = 5.0, proto: float = 0.0,
                 space: str = "emb") -> None:
        self.train, self.k, self.temp, self.knn, self.proto = train, k, temp, knn, proto
        self.y = np.eye(n_labels, dtype=np.float32)[y]
        self.space = WordSpace(space, sorted(set(train.modifiers) | set(train.heads)))
        self._sums: dict[str, np.ndarray] = {}

    def _norms(self, side: str) -> np.ndarray:
        """n_r ‖μ^r‖ = ‖Σ_{j in r} t_j‖ per relation (the training words' sum, unit vectors)."""
        if side not in self._sums:
            ws = self.train.modifiers if side == "mod" else self.train.heads
            gram = self.space.sims(ws, ws)
            sq = np.einsum("jr,jk,kr->r", self.y, gram, self.y)
            self._sums[side] = np.sqrt(np.maximum(sq, 1e-9))
        return self._sums[side]

    def blocks(self, data: Compounds, is_train: bool) -> list[np.ndarray]:
        t = self.train
        sm = self.space.sims(data.modifiers, t.modifiers)
        sh = self.space.sims(data.heads, t.heads)
        out = []
        if self.knn:
            s = np.maximum(sm, 0) * np.maximum(sh, 0)
            if is_train:  # leave out neighbours sharing a word, as val shares none
                mask = (np.array(data.modifiers)[:, None] == np.array(t.modifiers)[None, :]) | (
                    np.array(data.heads)[:, None] == np.array(t.heads)[None, :])
                s = np.where(mask, -np.inf, s)
            idx = np.argpartition(-s, self.k, axis=1)[:, :self.k]
            top = np.take_along_axis(s, idx, 1)
            w = np.exp((top - top.max(1, keepdims=True)) / self.temp)
            w /= w.sum(1, keepdims=True)
            out.append(self.knn * np.einsum("nk,nkr->nr", w, self.y[idx]))
        if self.proto:  # cos(q, μ^r) = Σ_{j in r} cos(q, t_j) / (n_r ‖μ^r‖), via similarities
            pm, ph = sm @ self.y, sh @ self.y
            out.append(self.proto * pm / self._norms("mod") * ph / self._norms("head"))
        return [b.astype(np.float32) for b in out]


class WithLabelBlocks(NCClassifier):
    """The system's classifier with :class:`LabelBlocks` appended to its features."""

    block_options: ClassVar[dict[str, Any] | None] = None

    def fit(self, train: Compounds, val: Compounds | None = None, **kw: Any) -> NCClassifier:
        self._train_data, self._extra = train, None
        if self.block_options is None:
            return super().fit(train, val, **kw)  # the package's transform (neighbours)
        if self.block_options is not None:
            self._extra = LabelBlocks(train, self.encode(train.labels or []), len(self.labels),
                                      **self.block_options)
        return super().fit(train, val, **kw)

    def transform(self, data: Compounds, *, training_rows: bool = False) -> Any:
        if self._extra is None:
            return super().transform(data, training_rows=training_rows)
        assert self.features is not None
        parts = self.features.transform_parts(data.modifiers, data.heads)
        if self._extra is not None:
            parts += self._extra.blocks(data, data is self._train_data)
        return BlockMatrix.from_parts(parts)


MORPH = "wordnet-morph:normalize=true"
#: name -> (features added to the recipe's, label blocks (None: none), replace the WordNet block);
#: a ``str`` as label blocks is the package's ``neighbours`` setting ("off": None)
CONFIGS: dict[str, tuple[list[str], dict | str | None, str | None]] = {
    "recipe": ([], None, None),
    "+ derivations (with verb hypernyms) x2": ([f"{MORPH},groups=drv,weight=2"], None, None),
    "+ derivations (no verb hypernyms) x1": (
        [f"{MORPH},groups=drv,verb_hyper=false,weight=1"], None, None),
    "+ suffixes x1": ([f"{MORPH},groups=suffix,weight=1"], None, None),
    "+ suffixes x2": ([f"{MORPH},groups=suffix,weight=2"], None, None),
    "+ verb/adj senses x2": ([f"{MORPH},groups=pos,weight=2"], None, None),
    "+ derivations + suffixes + verb/adj senses x2": ([f"{MORPH},weight=2"], None, None),
    "+ domains + meronym flags x1": ([f"{MORPH},groups=domain+mero,weight=1"], None, None),
    "WordNet features of >= 2 training words": (
        [], None, "wordnet-general:normalize=true,weight=4,min_words=2"),
    "WordNet features of >= 3 training words": (
        [], None, "wordnet-general:normalize=true,weight=4,min_words=3"),
    "+ kNN pair histogram x1": ([], "weight=1", None),
    "+ kNN pair histogram x3": ([], "weight=3", None),
    "+ kNN pair histogram x5": ([], "weight=5", None),
    "+ kNN pair histogram x5 (MiniLM + glosses + WordNet space)": (
        [], {"knn": 5.0, "space": "emb+wn"}, None),
    "+ relation prototypes x3 (MiniLM + glosses + WordNet space)": (
        [], {"knn": 0.0, "proto": 3.0, "space": "emb+wn"}, None),
    "+ bilinear pairs d8 x3 (MiniLM + glosses space)": (
        ["pair-bilinear:d=8,space=minilm+gloss,weight=3"], None, None),
    "+ bilinear pairs d12 x3 (MiniLM + glosses + WordNet space)": (
        ["pair-bilinear:d=12,weight=3"], None, None),
}


def resplit(train: Compounds, val: Compounds, r: int, p: float = 0.65
            ) -> tuple[Compounds, Compounds]:
    """A lexically disjoint train/val split of train + val (seed ``100 + r``)."""
    mods, heads = train.modifiers + val.modifiers, train.heads + val.heads
    labs = (train.labels or []) + (val.labels or [])
    words = sorted(set(mods) | set(heads))
    side = dict(zip(words, np.random.default_rng(100 + r).random(len(words)) < p))

    def part(keep: bool) -> Compounds:
        ix = [i for i, (m, h) in enumerate(zip(mods, heads)) if side[m] == side[h] == keep]
        return Compounds([mods[i] for i in ix], [heads[i] for i in ix], [labs[i] for i in ix])

    return part(True), part(False)


def resplit_random(train: Compounds, val: Compounds, r: int, p: float = 0.85
                   ) -> tuple[Compounds, Compounds]:
    """A random train/val split of train + val (seed ``100 + r``): for the random splits."""
    mods, heads = train.modifiers + val.modifiers, train.heads + val.heads
    labs = (train.labels or []) + (val.labels or [])
    side = np.random.default_rng(100 + r).random(len(mods)) < p

    def part(keep: bool) -> Compounds:
        ix = np.flatnonzero(side == keep)
        return Compounds([mods[i] for i in ix], [heads[i] for i in ix], [labs[i] for i in ix])

    return part(True), part(False)


def score(split: str, name: str, train: Compounds, val: Compounds, seed: int) -> float:
    add, blocks, wordnet = CONFIGS[name] if name in CONFIGS else (
        [], name.removeprefix("+ neighbours "), None)
    s = recipe(split)
    feats = [wordnet if (wordnet and f.startswith("wordnet:")) else f for f in s.features]
    more = {} if not isinstance(blocks, str) else {
        "neighbours": None if blocks == "off" else blocks}
    settings = NCSettings(**{**s.__dict__, "features": [*feats, *add], "seeds": [seed],
                             **more})
    cls = type("Run", (WithLabelBlocks,), {
        "block_options": blocks if isinstance(blocks, dict) else None})
    clf = cls(settings, list(labels_for(split))).fit(train, val)
    assert clf.selection is not None
    return float(clf.selection.headline["weighted_f1"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", nargs="*", default=["fine_lexical", "coarse_lexical"])
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS))
    ap.add_argument("--neighbours", nargs="*", default=[], metavar="SPEC",
                    help="more configurations: the recipe with settings.neighbours = SPEC "
                         "('off': without the block)")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--resplits", type=int, default=0,
                    help="resplits of train + val: lexically disjoint on the lexical splits, "
                         "random (85/15) on the random ones")
    ap.add_argument("--data-dir", default=os.environ.get("THETANET_DATA"))
    args = ap.parse_args()
    print("| split | configuration | val wF1 (mean ± std) | per seed | resplits (mean) | s |")
    print("|---|---|---|---|---|---|")
    for split in args.splits:
        train, val = load_split(split, args.data_dir)
        for name in [*args.configs, *(f"+ neighbours {n}" for n in args.neighbours)]:
            t0 = time.perf_counter()
            f1 = [score(split, name, train, val, seed) for seed in args.seeds]
            cut = resplit if "lexical" in split else resplit_random
            rs = [score(split, name, *cut(train, val, r), 0) for r in range(args.resplits)]
            shown = (f"{statistics.mean(rs):.4f} ({', '.join(f'{x:.4f}' for x in rs)})"
                     if rs else "")
            mean = (f"{statistics.mean(f1):.4f} ± {statistics.pstdev(f1):.4f}" if f1 else "")
            print(f"| {split} | {name} | {mean} | {', '.join(f'{x:.4f}' for x in f1)} | {shown} | "
                  f"{time.perf_counter() - t0:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
