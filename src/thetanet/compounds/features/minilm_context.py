"""Contextual all-MiniLM-L6-v2 encodings, computed by thetanet's own transformer encoder.

``minilm-context``     per compound: the sentence vector of the compound text ("olive oil"),
                       and the last-layer states of the modifier's and the head's word-pieces
                       in that text (what "olive" means next to "oil")
``minilm-word``        per word: the sentence vector of the word alone (or in a short context)
``minilm-paraphrase``  per compound: cosine similarity between the compound's sentence vector
                       and relation paraphrases filled with its words ("oil made of olive",
                       "oil for olive", …), standardised with the training mean and std

The encoder is :class:`thetanet.transformer.TransformerEncoder` (NumPy); only ``safetensors``
and ``tokenizers`` are needed to read the model. Rows are cached like the other expensive
representations (per word, or per compound under the key ``"modifier<TAB>head"``), so unseen
val/test compounds are encoded on demand and seen ones come from the cache.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from thetanet.compounds.embeddings import EmbeddingsMissingError, resolve_model_dir
from thetanet.compounds.features.base import CacheDir, PerWordExtractor, register
from thetanet.compounds.features.minilm import MiniLMStaticExtractor
from thetanet.compounds.features.options import Rule, boolean, name_list, nullable, text
from thetanet.files import ModelFileError
from thetanet.transformer import TransformerEncoder, l2_normalize, mean_pool

__all__ = ["PARAPHRASES", "ContextEncoder", "MiniLMContextExtractor",
           "MiniLMParaphraseExtractor", "MiniLMWordExtractor"]

#: Relation paraphrases, ``{head}``/``{modifier}`` filled per compound; a few per coarse
#: relation of Tratz (2011) — the fine relation each one is written for is in the comment.
PARAPHRASES: dict[str, tuple[str, ...]] = {
    # Lauer's (1995) eight prepositions
    "lauer": ("{head} of {modifier}", "{head} for {modifier}", "{head} in {modifier}",
              "{head} at {modifier}", "{head} on {modifier}", "{head} from {modifier}",
              "{head} with {modifier}", "{head} about {modifier}"),
    "relations": (
        "{head} made of {modifier}",          # SUBSTANCE-MATERIAL-INGREDIENT
        "{head} containing {modifier}",       # CONTAIN, AMOUNT-OF
        "{head} that is part of {modifier}",  # WHOLE+PART_OR_MEMBER_OF
        "{head} located in {modifier}",       # LOCATION
        "{head} during {modifier}",           # TIME-OF1/2
        "{head} about {modifier}",            # TOPIC, TOPIC_OF_EXPERT/COGNITION
        "{head} caused by {modifier}",        # CREATOR-PROVIDER-CAUSE_OF, JUSTIFICATION
        "{head} done by {modifier}",          # SUBJECT
        "{head} by means of {modifier}",      # MEANS
        "{head} felt by {modifier}",          # EXPERIENCER-OF-EXPERIENCE
        "{head} that is a {modifier}",        # EQUATIVE
        "{head} like a {modifier}",           # ADJ-LIKE_NOUN, PARTIAL_ATTRIBUTE_TRANSFER
        "{head} for {modifier}",              # PURPOSE, USER_RECIPIENT
        "{head} that makes {modifier}",       # CREATE-PROVIDE-GENERATE-SELL
        "{head} that engages in {modifier}",  # PERFORM&ENGAGE_IN
        "{head} that manages {modifier}",     # ORGANIZE&SUPERVISE&AUTHORITY
        "{head} against {modifier}",          # MITIGATE&OPPOSE
        "{head} of the {modifier}",           # OBJECTIVE, RELATIONAL-NOUN-COMPLEMENT
        "{head} owned by {modifier}",         # OWNER-USER
        "{head} working for {modifier}",      # EMPLOYER
        "{head} of a {modifier}",             # WHOLE+ATTRIBUTE…, MEASURE
    ),
}
PARAPHRASES["all"] = PARAPHRASES["relations"] + PARAPHRASES["lauer"]

_SLOT = re.compile(r"\{(head|modifier|word)\}")


def _fill(template: str, values: Mapping[str, str]) -> tuple[list[str], dict[str, int]]:
    """``"{head} made of {modifier}"`` → words ``["oil", "made", "of", "olive"]`` and the
    position of each slot's word (slots are whole space-separated words)."""
    words, where = [], {}
    for part in template.split():
        m = _SLOT.fullmatch(part)
        if m:
            where[m.group(1)] = len(words)
            words.append(values[m.group(1)])
        elif _SLOT.search(part):
            raise ValueError(f"a slot must be a whole word in {template!r}")
        else:
            words.append(part)
    return words, where


class ContextEncoder:
    """Tokenizer + NumPy transformer of a BERT-like sentence model, loaded once per process."""

    _cache: dict[str, ContextEncoder] = {}
    _lock = threading.Lock()

    def __init__(self, model_dir: Path) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise EmbeddingsMissingError("contextual encodings need `pip install tokenizers`")\
                from None
        self.model_dir = Path(model_dir)
        try:
            self.encoder = TransformerEncoder.from_pretrained(self.model_dir)
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            if isinstance(exc, ModelFileError):
                raise
            raise ModelFileError(f"{self.model_dir / 'model.safetensors'}: not a usable "
                                 f"encoder ({type(exc).__name__}: {str(exc)[:200]})") from None
        tok = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(max_length=min(512, int(self.encoder.pos.shape[0])))
        self.tokenizer = tok

    @classmethod
    def load(cls, model: str | None = None) -> ContextEncoder:
        d = resolve_model_dir(model)
        with cls._lock:
            if str(d) not in cls._cache:
                cls._cache[str(d)] = cls(d)
            return cls._cache[str(d)]

    @staticmethod
    def fingerprint(model: str | None) -> str:
        d = resolve_model_dir(model)
        st = (d / "model.safetensors").stat()
        return f"{d}|{st.st_size}|{st.st_mtime_ns}|context-v1"

    @property
    def dim(self) -> int:
        return self.encoder.hidden_size

    def encode(self, texts: Sequence[Sequence[str]], groups: Sequence[Sequence[int]] = (),
               batch_tokens: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        """Texts given as word lists → (sentence vectors (n, H), L2-normalised as
        sentence-transformers does; word vectors (n, len(groups), H)): ``groups[g][i]`` is the
        word of text i whose word-pieces' last-layer states are averaged for slot g
        (-1: none, zeros)."""
        n, h = len(texts), self.dim
        sent = np.zeros((n, h), np.float32)
        words = np.zeros((n, len(groups), h), np.float32)
        if not n:
            return sent, words
        encs = self.tokenizer.encode_batch([list(t) for t in texts], is_pretokenized=True)
        seqs = [e.ids for e in encs]
        # per token: which group's word it belongs to (-1: [CLS], [SEP], other words)
        slot_of = []
        for i, e in enumerate(encs):
            wid = np.array([-1 if w is None else w for w in e.word_ids], np.int64)
            slot = np.full((len(groups), len(wid)), False)
            for g, positions in enumerate(groups):
                if positions[i] >= 0:
                    slot[g] = wid == positions[i]
            slot_of.append(slot)
        for rows, hidden, mask in self.encoder.iter_hidden(seqs, batch_tokens):
            sent[rows] = l2_normalize(mean_pool(hidden, mask))
            for g in range(len(groups)):
                m = np.zeros(mask.shape, np.float32)
                for r, k in enumerate(rows):
                    m[r, : len(seqs[k])] = slot_of[k][g]
                words[rows, g] = mean_pool(hidden, m)
        return sent, words


class _CompoundCached(PerWordExtractor):
    """Per-compound rows cached under ``"modifier\\thead"`` (a TSV field holds no tab)."""

    disk_cache = True

    def _encoder(self) -> ContextEncoder:
        return ContextEncoder.load(self.options["model"])

    def _rows_for(self, modifiers: Sequence[str], heads: Sequence[str]) -> np.ndarray:
        keys = [f"{m}\t{h}" for m, h in zip(modifiers, heads)]
        rows = self.rows(keys)
        if not keys:
            return np.zeros((0, self._row_width()), np.float32)
        return np.stack([rows[k] for k in keys]).astype(np.float32, copy=False)

    def _row_width(self) -> int:
        raise NotImplementedError

    def _check_width(self, width: int) -> None:
        if width != self._row_width():
            raise ValueError(f"cached rows have {width} columns, expected {self._row_width()}")

    def _pack(self, words: list[str], rows: list[np.ndarray]) -> dict[str, np.ndarray]:
        return {"words": np.array(words, dtype=str), "vectors": np.stack(rows).astype(np.float32)}

    def _unpack(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        words, vecs = arrays["words"].tolist(), arrays["vectors"]
        if vecs.ndim != 2 or len(vecs) != len(words):
            raise ValueError("inconsistent cache arrays")
        self._check_width(int(vecs.shape[1]))
        return dict(zip(words, vecs.astype(np.float32)))

    @staticmethod
    def _split_keys(keys: list[str]) -> tuple[list[str], list[str]]:
        pairs = [k.split("\t", 1) for k in keys]
        return [p[0] for p in pairs], [p[1] for p in pairs]


_CONTEXT_PARTS = ("compound", "mod", "head")


@register
class MiniLMContextExtractor(_CompoundCached):
    """Per compound, from one forward pass over ``text`` (default ``"{modifier} {head}"``):
    ``compound`` = the sentence vector (mean of the last layer, L2-normalised), ``mod`` /
    ``head`` = the mean last-layer state of that word's word-pieces in the text
    (L2-normalised with ``normalize=true``, the default). ``parts`` picks and orders them.
    """

    name = "minilm-context"
    sparse = False
    defaults: ClassVar[dict[str, Any]] = {"model": None, "parts": list(_CONTEXT_PARTS),
                                          "text": "{modifier} {head}", "normalize": True}
    option_rules: ClassVar[dict[str, Rule]] = {
        "model": nullable(text()), "parts": name_list(_CONTEXT_PARTS), "text": text(1000),
        "normalize": boolean}

    def __init__(self, cache_dir: CacheDir = None, **options: Any) -> None:
        super().__init__(cache_dir, **options)
        parts = self.options["parts"]
        if isinstance(parts, str):
            parts = [p for p in re.split(r"[+,\s]+", parts) if p]
        self.options["parts"] = list(parts)
        if not parts or any(p not in _CONTEXT_PARTS for p in parts):
            raise ValueError(f"minilm-context parts must be a non-empty list from "
                             f"{_CONTEXT_PARTS}")
        _, where = _fill(self.options["text"], {"head": "h", "modifier": "m", "word": "w"})
        if set(where) != {"head", "modifier"}:
            raise ValueError("minilm-context text needs {modifier} and {head}")
        self._width = 384

    def cache_settings(self) -> dict[str, Any]:
        return {"model": ContextEncoder.fingerprint(self.options["model"]),
                "text": self.options["text"]}

    def _row_width(self) -> int:
        return 3 * self._width

    def _check_width(self, width: int) -> None:
        if width % 3 or not width:
            raise ValueError(f"cached rows have {width} columns, not 3 blocks")
        self._width = width // 3  # the model's hidden size, as cached

    def _compute(self, words: list[str]) -> list[np.ndarray]:
        enc = self._encoder()
        self._width = enc.dim
        mods, heads = self._split_keys(words)
        texts, pos_m, pos_h = [], [], []
        for m, h in zip(mods, heads):
            t, where = _fill(self.options["text"], {"modifier": m, "head": h})
            texts.append(t)
            pos_m.append(where["modifier"])
            pos_h.append(where["head"])
        sent, ctx = enc.encode(texts, [pos_m, pos_h])
        return list(np.concatenate([sent, ctx[:, 0], ctx[:, 1]], axis=1))

    def fit(self, modifiers: Sequence[str], heads: Sequence[str]) -> MiniLMContextExtractor:
        self._rows_for(modifiers, heads)
        self.fitted = True
        return self

    def transform(self, modifiers: Sequence[str], heads: Sequence[str]) -> np.ndarray:
        self._check_fitted()
        rows = self._rows_for(list(modifiers), list(heads))
        w = self._width
        blocks = {"compound": rows[:, :w], "mod": rows[:, w:2 * w], "head": rows[:, 2 * w:]}
        out = []
        for p in self.options["parts"]:
            b = blocks[p]
            out.append(l2_normalize(b) if self.options["normalize"] and p != "compound" else b)
        return np.hstack(out).astype(np.float32).reshape(len(rows), self.dim)

    @property
    def dim(self) -> int:
        return self._width * len(self.options["parts"])

    def get_state(self) -> dict[str, Any]:
        self._check_fitted()
        return {"width": self._width}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self._width = int(state["width"])
        self.fitted = True

    def feature_names(self) -> list[str]:
        return [f"{self.name}:{p}:{i}" for p in self.options["parts"] for i in range(self._width)]


@register
class MiniLMWordExtractor(MiniLMStaticExtractor):
    """Per word: the sentence vector of ``context`` (default ``"{word}"``) with the word filled
    in — the contextual encoder's idea of the word alone. Options as ``minilm-static``
    (``parts`` from mod, head, prod, diff, absdiff; ``normalize``; ``model``)."""

    name = "minilm-word"
    defaults: ClassVar[dict[str, Any]] = {**MiniLMStaticExtractor.defaults, "context": "{word}"}
    option_rules: ClassVar[dict[str, Rule]] = {**MiniLMStaticExtractor.option_rules,
                                               "context": text(1000)}

    def __init__(self, cache_dir: CacheDir = None, **options: Any) -> None:
        super().__init__(cache_dir, **options)
        _, where = _fill(self.options["context"], {"head": "h", "modifier": "m", "word": "w"})
        if set(where) != {"word"}:
            raise ValueError("minilm-word context needs exactly the slot {word}")

    def cache_settings(self) -> dict[str, Any]:
        return {"model": ContextEncoder.fingerprint(self.options["model"]),
                "context": self.options["context"]}

    def _compute(self, words: list[str]) -> list[np.ndarray]:
        enc = ContextEncoder.load(self.options["model"])
        self._width = enc.dim
        texts = [_fill(self.options["context"], {"word": w})[0] for w in words]
        sent, _ = enc.encode(texts)
        return list(sent)


def _templates(v: Any) -> str | None:
    """A paraphrase set's name (checked in ``combined``), or a list of 1 to 100 templates."""
    rule = text(1000)
    if isinstance(v, str) and rule(v) is None:
        return None
    if isinstance(v, list) and 0 < len(v) <= 100 and all(rule(t) is None for t in v):
        return None
    return f"one of {', '.join(PARAPHRASES)} or a list of 1 to 100 templates"


@register
class MiniLMParaphraseExtractor(_CompoundCached):
    """Per compound, cos(s(compound text), s(paraphrase)) for each relation paraphrase
    (``templates``: a set name of :data:`PARAPHRASES` — ``relations``, ``lauer``, ``all`` — or
    a list of templates with ``{head}`` and ``{modifier}``), s = the sentence vector.
    With ``center=true`` (default) each compound's mean over the templates is subtracted (how
    well *this* paraphrase fits compared with the others); then each column is standardised
    with the mean and std fitted on the training compounds."""

    name = "minilm-paraphrase"
    sparse = False
    defaults: ClassVar[dict[str, Any]] = {"model": None, "templates": "relations",
                                          "text": "{modifier} {head}", "center": True}
    option_rules: ClassVar[dict[str, Rule]] = {
        "model": nullable(text()), "templates": _templates, "text": text(1000),
        "center": boolean}

    @classmethod
    def combined(cls, options: Mapping[str, Any]) -> str | None:
        t = options["templates"]
        if isinstance(t, str) and t not in PARAPHRASES:
            return f"unknown paraphrase set {t!r:.40}; choose from {', '.join(PARAPHRASES)}"
        return None

    def __init__(self, cache_dir: CacheDir = None, **options: Any) -> None:
        super().__init__(cache_dir, **options)
        t = self.options["templates"]
        if isinstance(t, str):
            if t not in PARAPHRASES:
                raise ValueError(f"unknown paraphrase set {t!r}; choose from "
                                 f"{', '.join(PARAPHRASES)} or give a list of templates")
            t = list(PARAPHRASES[t])
        self.templates: list[str] = list(t)
        for tpl in [*self.templates, self.options["text"]]:
            _, where = _fill(tpl, {"head": "h", "modifier": "m", "word": "w"})
            if set(where) != {"head", "modifier"}:
                raise ValueError(f"paraphrase {tpl!r} needs {{modifier}} and {{head}}")
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def cache_settings(self) -> dict[str, Any]:
        return {"model": ContextEncoder.fingerprint(self.options["model"]),
                "templates": self.templates, "text": self.options["text"]}

    def _row_width(self) -> int:
        return len(self.templates)

    def _compute(self, words: list[str]) -> list[np.ndarray]:
        mods, heads = self._split_keys(words)
        forms = [self.options["text"], *self.templates]
        texts = [_fill(f, {"modifier": m, "head": h})[0] for m, h in zip(mods, heads)
                 for f in forms]
        sent, _ = self._encoder().encode(texts)
        sent = sent.reshape(len(words), len(forms), -1)
        cos = np.einsum("nh,nkh->nk", sent[:, 0], sent[:, 1:])
        return list(cos.astype(np.float32))

    def _raw(self, modifiers: Sequence[str], heads: Sequence[str]) -> np.ndarray:
        x = self._rows_for(list(modifiers), list(heads))
        if self.options["center"]:
            x = x - x.mean(axis=1, keepdims=True)
        return x

    def fit(self, modifiers: Sequence[str], heads: Sequence[str]) -> MiniLMParaphraseExtractor:
        x = self._raw(modifiers, heads)
        self.mean = x.mean(axis=0) if len(x) else np.zeros(self._row_width(), np.float32)
        std = x.std(axis=0) if len(x) else np.ones(self._row_width(), np.float32)
        self.std = np.where(std > 1e-6, std, 1.0).astype(np.float32)
        self.fitted = True
        return self

    def transform(self, modifiers: Sequence[str], heads: Sequence[str]) -> np.ndarray:
        self._check_fitted()
        assert self.mean is not None and self.std is not None
        return ((self._raw(modifiers, heads) - self.mean) / self.std).astype(np.float32)

    @property
    def dim(self) -> int:
        return len(self.templates)

    def get_state(self) -> dict[str, Any]:
        self._check_fitted()
        assert self.mean is not None and self.std is not None
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.mean = np.asarray(state["mean"], np.float32)
        self.std = np.asarray(state["std"], np.float32)
        if self.mean.shape != (self.dim,) or self.std.shape != (self.dim,):
            raise ValueError("minilm-paraphrase state does not match its templates")
        self.fitted = True

    def feature_names(self) -> list[str]:
        return [f"{self.name}:{t}" for t in self.templates]
