"""Caption metrics (exact match, per-word accuracy, corpus BLEU-4) and generic decoding."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from thetanet.captions import decode as D
from thetanet.captions import metrics as M


def test_exact_match_and_word_accuracy():
    refs = ["a large seven", "a small two at the top left", "a small one"]
    hyps = ["a large seven", "a small two at the top", "a large one"]
    assert M.exact_match(refs, hyps) == pytest.approx(1 / 3)
    # positions: 3+1, 7+1, 3+1 = 16; wrong: <end> vs left, end missing, large vs small
    assert M.word_accuracy(refs, hyps) == pytest.approx((16 - 3) / 16)
    with pytest.raises(ValueError, match="one hypothesis per reference"):
        M.exact_match(refs, hyps[:2])


def test_bleu_of_perfect_and_disjoint_corpora():
    refs = ["a large seven to the left of a small two", "a small five at the top left"]
    assert M.corpus_bleu(refs, refs) == pytest.approx(1.0)
    assert M.corpus_bleu(refs, ["x y z w v", "q r s t u"]) == 0.0


def test_bleu_brevity_penalty_by_hand():
    # hypothesis = the first 5 of 7 reference words: all n-gram precisions are 1
    refs, hyps = ["a b c d e f g"], ["a b c d e"]
    assert M.corpus_bleu(refs, hyps) == pytest.approx(np.exp(1 - 7 / 5))


def test_bleu_equals_nltk_corpus_bleu():
    bleu = pytest.importorskip("nltk.translate.bleu_score")
    rng = np.random.default_rng(0)
    words = "a small large seven two to the left of above".split()
    refs, hyps = [], []
    for _ in range(40):
        r = list(rng.choice(words, rng.integers(4, 12)))
        h = list(r)
        for _ in range(rng.integers(0, 3)):  # a few substitutions and a deletion
            h[rng.integers(len(h))] = str(rng.choice(words))
        if rng.random() < 0.3:
            h = h[:-1]
        refs.append(r)
        hyps.append(h)
    ours = M.corpus_bleu(refs, hyps)
    theirs = bleu.corpus_bleu([[r] for r in refs], hyps)
    assert 0.1 < ours < 1.0
    assert ours == pytest.approx(theirs, abs=1e-12)
    scores = M.caption_scores([" ".join(r) for r in refs], [" ".join(h) for h in hyps])
    assert scores["bleu4"] == pytest.approx(theirs, abs=1e-12)


# ---------------------------------------------------------------- decoding over a toy model

START, END, V = 0, 1, 4


def _table_step(table: np.ndarray):
    """A model whose next-token distribution depends on the row and the last token only."""

    def step(rows: np.ndarray, prefixes: np.ndarray) -> np.ndarray:
        return np.log(table[rows, prefixes[:, -1]])

    return step


def _random_tables(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = rng.random((n, V, V)) ** 3 + 1e-3
    return t / t.sum(axis=2, keepdims=True)


def _log_prob(table: np.ndarray, tokens: list[int], max_len: int) -> float:
    prev, total = START, 0.0
    seq = tokens + [END] if len(tokens) < max_len else tokens
    for t in seq:
        total += np.log(table[prev, t])
        prev = t
    return total


def test_greedy_picks_the_argmax_chain():
    tables = _random_tables(5, 1)
    out = D.greedy_decode(_table_step(tables), 5, max_len=6, start=START, end=END)
    for table, tokens in zip(tables, out):
        prev, expect = START, []
        for _ in range(6):
            nxt = int(table[prev].argmax())
            if nxt == END:
                break
            expect.append(nxt)
            prev = nxt
        assert tokens == expect


def test_beam_of_one_is_greedy_and_a_wide_beam_finds_the_best_caption():
    tables = _random_tables(6, 2)
    step = _table_step(tables)
    max_len = 4
    greedy = D.greedy_decode(step, 6, max_len, START, END)
    assert D.beam_search(step, 6, max_len, START, END, beam_width=1) == greedy
    # with a beam as wide as all prefixes the search is exhaustive
    wide = D.beam_search(step, 6, max_len, START, END, beam_width=V ** max_len)
    better = 0
    for table, tokens, g in zip(tables, wide, greedy):
        candidates = [list(c) for k in range(max_len + 1)
                      for c in itertools.product([0, 2, 3], repeat=k)]
        best = max(candidates, key=lambda c: _log_prob(table, c, max_len))
        assert _log_prob(table, tokens, max_len) == pytest.approx(
            _log_prob(table, best, max_len))
        better += _log_prob(table, best, max_len) > _log_prob(table, g, max_len) + 1e-9
    assert better >= 1  # the toy tables do make greedy miss the best caption somewhere


def test_decode_checks_the_step_output():
    with pytest.raises(ValueError, match="log-probabilities"):
        D.greedy_decode(lambda r, p: np.zeros((1, V)), 3, 2, START, END)
    with pytest.raises(ValueError, match="beam_width"):
        D.beam_search(_table_step(_random_tables(1, 0)), 1, 2, START, END, beam_width=0)
