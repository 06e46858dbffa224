r"""How good a caption is: exact match, per-word accuracy and corpus BLEU-4.

- **Exact match**: the fraction of hypotheses equal to their reference, word for word.
- **Per-word accuracy**: over all reference positions t (the words and the final ``<end>``),
  the fraction where the hypothesis has the same token at position t (a hypothesis that ends
  early, or goes on, is wrong at those positions).
- **Corpus BLEU** (Papineni et al., 2002), one reference per hypothesis: with p_n the clipped
  n-gram precision summed over the corpus (Σ_i Σ_g min(c_hyp(g), c_ref(g)) / Σ_i Σ_g c_hyp(g))
  and the brevity penalty BP = 1 if c > r else exp(1 − r/c) (c, r: total hypothesis and
  reference lengths),

      BLEU-N = BP · exp( (1/N) Σ_{n=1}^{N} log p_n )

  — 0 when some p_n is 0 (no smoothing): nltk's ``corpus_bleu`` with its default weights.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

__all__ = ["caption_scores", "corpus_bleu", "exact_match", "word_accuracy"]

Words = Sequence[str]


def _words(captions: Sequence[str] | Sequence[Words]) -> list[list[str]]:
    return [c.split() if isinstance(c, str) else list(c) for c in captions]


def _check(references: Sequence, hypotheses: Sequence) -> None:
    if len(references) != len(hypotheses) or not references:
        raise ValueError(f"need one hypothesis per reference and at least one pair, got "
                         f"{len(references)} references and {len(hypotheses)} hypotheses")


def exact_match(references: Sequence[str] | Sequence[Words],
                hypotheses: Sequence[str] | Sequence[Words]) -> float:
    """The fraction of hypotheses equal to their reference (as word lists)."""
    _check(references, hypotheses)
    refs, hyps = _words(references), _words(hypotheses)
    return sum(r == h for r, h in zip(refs, hyps)) / len(refs)


def word_accuracy(references: Sequence[str] | Sequence[Words],
                  hypotheses: Sequence[str] | Sequence[Words]) -> float:
    """The fraction of reference positions (words, then ``<end>``) the hypothesis matches."""
    _check(references, hypotheses)
    right = total = 0
    for r, h in zip(_words(references), _words(hypotheses)):
        r, h = [*r, "<end>"], [*h, "<end>"]
        right += sum(a == b for a, b in zip(r, h))
        total += len(r)
    return right / total


def _ngrams(words: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def corpus_bleu(references: Sequence[str] | Sequence[Words],
                hypotheses: Sequence[str] | Sequence[Words], max_n: int = 4) -> float:
    """Corpus BLEU-``max_n`` with uniform weights and one reference per hypothesis."""
    _check(references, hypotheses)
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    refs, hyps = _words(references), _words(hypotheses)
    matched = [0] * max_n
    counted = [0] * max_n
    for r, h in zip(refs, hyps):
        for n in range(1, max_n + 1):
            hyp_grams, ref_grams = _ngrams(h, n), _ngrams(r, n)
            matched[n - 1] += sum(min(c, ref_grams[g]) for g, c in hyp_grams.items())
            counted[n - 1] += max(len(h) - n + 1, 0)
    if min(matched) == 0:
        return 0.0
    log_p = sum(math.log(m / c) for m, c in zip(matched, counted)) / max_n
    c_len, r_len = sum(map(len, hyps)), sum(map(len, refs))
    brevity = 1.0 if c_len > r_len else math.exp(1.0 - r_len / c_len)
    return brevity * math.exp(log_p)


def caption_scores(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
    """``exact_match``, ``bleu4`` and ``word_accuracy`` of the hypotheses, in one dict."""
    return {"exact_match": exact_match(references, hypotheses),
            "bleu4": corpus_bleu(references, hypotheses, 4),
            "word_accuracy": word_accuracy(references, hypotheses)}
