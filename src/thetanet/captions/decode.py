r"""Decoding a caption word by word: greedy and beam search, for any model.

Both work on a function ``step(rows, prefixes) -> log_probs``: given, for each of k partial
captions, the example it belongs to (``rows``, (k,) int) and its tokens so far (``prefixes``,
(k, t) int, starting with ``<start>``), return log P(next token | image, prefix), (k, V). The
captioner's ``step`` runs its network on the prefix; a test can pass a table.

- **Greedy**: ŵ_t = argmax_w log P(w | ŵ_<t, image), until ``<end>`` or ``max_len`` tokens.
- **Beam search** with width B: keep the B prefixes of highest Σ_t log P(w_t | w_<t, image);
  extend each by every token, keep the best B of all extensions (a prefix ending in ``<end>``
  is finished and competes with its score as it is), stop when the best B are all finished or
  ``max_len`` tokens are out. B = 1 is greedy. The best finished caption wins; with
  ``length_alpha`` α > 0 scores are divided by (length)^α (longer captions pay less).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["StepFn", "beam_search", "greedy_decode"]

StepFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _check(n: int, max_len: int) -> None:
    if n < 0 or max_len < 1:
        raise ValueError(f"need n >= 0 examples and max_len >= 1, got n={n}, max_len={max_len}")


def _log_probs(step: StepFn, rows: np.ndarray, prefixes: np.ndarray) -> np.ndarray:
    out = np.asarray(step(rows, prefixes), dtype=np.float64)
    if out.ndim != 2 or out.shape[0] != rows.size:
        raise ValueError(f"step must return (k, V) log-probabilities for k = {rows.size} "
                         f"prefixes, got shape {out.shape}")
    return out


def greedy_decode(step: StepFn, n: int, max_len: int, start: int, end: int
                  ) -> list[list[int]]:
    """Per example, the argmax tokens after ``start`` up to (without) ``end``."""
    _check(n, max_len)
    prefixes = np.full((n, 1), start, np.int64)
    active = np.arange(n)
    done = np.zeros(n, bool)
    for _ in range(max_len):
        if active.size == 0:
            break
        nxt = _log_probs(step, active, prefixes[active]).argmax(axis=1)
        column = np.full((n, 1), end, np.int64)
        column[active, 0] = nxt
        prefixes = np.concatenate([prefixes, column], axis=1)
        done[active[nxt == end]] = True
        active = active[nxt != end]
    return [_strip(p[1:], end) for p in prefixes]


def _strip(tokens: np.ndarray, end: int) -> list[int]:
    out = []
    for t in tokens.tolist():
        if t == end:
            break
        out.append(t)
    return out


def beam_search(step: StepFn, n: int, max_len: int, start: int, end: int,
                beam_width: int = 3, length_alpha: float = 0.0) -> list[list[int]]:
    """Per example, the best caption found by a beam of ``beam_width`` (see the module doc)."""
    _check(n, max_len)
    if beam_width < 1:
        raise ValueError(f"beam_width must be >= 1, got {beam_width}")
    # per example: list of (score, tokens, finished)
    beams: list[list[tuple[float, list[int], bool]]] = [[(0.0, [start], False)]
                                                        for _ in range(n)]
    for _ in range(max_len):
        live = [(i, b) for i in range(n) for b in beams[i] if not b[2]]
        if not live:
            break
        rows = np.array([i for i, _ in live], np.int64)
        prefixes = np.array([b[1] for _, b in live], np.int64)
        logp = _log_probs(step, rows, prefixes)
        candidates: list[list[tuple[float, list[int], bool]]] = [
            [b for b in beams[i] if b[2]] for i in range(n)]
        for (i, (score, tokens, _)), lp in zip(live, logp):
            best = np.argsort(-lp, kind="stable")[:beam_width]
            candidates[i] += [(score + float(lp[t]), [*tokens, int(t)], int(t) == end)
                              for t in best]
        beams = [sorted(c, key=lambda b: -_normalised(b, length_alpha))[:beam_width]
                 if any(not b[2] for b in beams[i]) else beams[i]
                 for i, c in enumerate(candidates)]
    return [_strip(np.array(max(b, key=lambda x: _normalised(x, length_alpha))[1][1:]), end)
            for b in beams]


def _normalised(beam: tuple[float, list[int], bool], alpha: float) -> float:
    score, tokens, _ = beam
    return score / (len(tokens) - 1) ** alpha if alpha else score
