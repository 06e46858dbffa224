"""The arena's scorer: a hidden gold file split into a seeded public and private part, and an
upload validated and scored exactly as ``thetanet nc score`` does it.

Both parts are scored with :func:`thetanet.compounds.scoring.score_labels` (support-weighted F1,
the official metric). Each part also keeps, per relation, its counts (true positives ``tp``,
predicted ``pred``, gold ``support``): counts add up, F1 does not, so the full-test score is
:func:`combine` of the two parts' counts — the same number ``nc score`` gives on the whole file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thetanet.compounds.scoring import alignment_problems, score_labels
from thetanet.data.tratz import COARSE_LABELS, FINE_LABELS, DataFormatError, read_tsv_bytes

__all__ = ["Gold", "Score", "SubmissionError", "combine", "load_gold", "score_upload"]

#: Most problems sent back for one upload (the count of the rest follows).
MAX_PROBLEMS = 20
#: What an upload is called in its line-numbered messages (never a path on the server).
SOURCE = "submission"

Counts = dict[str, list[int]]  # relation -> [tp, predicted, support]


class SubmissionError(ValueError):
    """An upload refused before scoring; ``problems`` are one line each, line-numbered."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True)
class Gold:
    """The hidden test set: compounds in order, relations, the public mask and the inventory."""

    pairs: list[tuple[str, str]]
    labels: list[str]
    public: np.ndarray  # bool, True where a compound scores on the public board
    inventory: tuple[str, ...]
    inventory_name: str
    sha256: str
    seed: int
    public_fraction: float

    @property
    def n(self) -> int:
        return len(self.pairs)


@dataclass(frozen=True)
class Score:
    """A scored upload: weighted-F1 of each part and of the whole, and each part's counts."""

    public_f1: float
    private_f1: float
    full_f1: float
    public_counts: Counts
    private_counts: Counts
    n_lines: int
    sha256: str


def _inventory(labels: list[str]) -> tuple[tuple[str, ...], str]:
    """The relation inventory the gold file's relations belong to (fine, coarse or its own)."""
    used = set(labels)
    if used <= set(FINE_LABELS):
        return FINE_LABELS, f"fine-grained Tratz relations ({len(FINE_LABELS)})"
    if used <= set(COARSE_LABELS):
        return COARSE_LABELS, f"coarse Tratz relations ({len(COARSE_LABELS)})"
    return tuple(sorted(used)), f"the gold file's own relations ({len(used)})"


def public_mask(n: int, seed: int, fraction: float) -> np.ndarray:
    """A fixed seeded subset of ``round(fraction · n)`` compounds (at least one on each side)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the public fraction must be in (0, 1), got {fraction!r}")
    if n < 2:
        raise ValueError(f"a gold file needs at least 2 compounds to split, got {n}")
    k = min(max(int(round(fraction * n)), 1), n - 1)
    mask = np.zeros(n, bool)
    mask[np.random.default_rng(seed).permutation(n)[:k]] = True
    return mask


def load_gold(path: str | Path, seed: int = 0, public_fraction: float = 0.3) -> Gold:
    """Read and validate the gold file (3 columns) and draw its public part."""
    data = Path(path).read_bytes()
    gold = read_tsv_bytes(data, str(path), require_label=True)
    labels = list(gold.labels or [])
    inventory, name = _inventory(labels)
    return Gold(list(zip(gold.modifiers, gold.heads)), labels,
                public_mask(len(labels), seed, public_fraction), inventory, name,
                hashlib.sha256(data).hexdigest(), seed, public_fraction)


def _counts(gold: list[str], pred: list[str], inventory: tuple[str, ...]) -> tuple[float, Counts]:
    """The official weighted-F1 and per-relation [tp, predicted, support] of one part."""
    result = score_labels(gold, pred, inventory)
    c = np.asarray(result["confusion"], np.int64)
    counts = {lab: [int(c[i, i]), int(c[:, i].sum()), int(c[i].sum())]
              for i, lab in enumerate(result["labels"]) if c[:, i].sum() or c[i].sum()}
    return float(result["weighted_f1"]), counts


def combine(*parts: Counts) -> float:
    """Weighted-F1 of the union of parts, from their summed counts (as ``metrics.f1_score``):
    F1_c = 2·P_c·R_c / (P_c + R_c), averaged with weights support_c / Σ support."""
    total: dict[str, np.ndarray] = {}
    for part in parts:
        for lab, row in part.items():
            total[lab] = total.get(lab, np.zeros(3, np.int64)) + np.asarray(row, np.int64)
    if not total:
        return 0.0
    tp, pred, support = (np.array([total[lab][j] for lab in total], np.float64)
                         for j in range(3))
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred > 0, tp / pred, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float((f1 * support).sum() / support.sum()) if support.sum() else 0.0


def _check_shape(gold: Gold, data: bytes) -> None:
    """Cheap refusals before parsing: empty, far too many lines."""
    if not data.strip():
        raise SubmissionError("the file is empty: it must hold one prediction per test compound")
    lines = data.count(b"\n") + (not data.endswith(b"\n"))
    if lines > gold.n + 100:  # blank lines at the end are allowed; this many never are
        raise SubmissionError(f"the file has {lines:,} lines but the test set has "
                              f"{gold.n:,} compounds")


def parse_upload(gold: Gold, data: bytes) -> list[str]:
    """The predicted relations of an upload, validated as ``nc score`` validates predictions
    (and each relation one of the inventory); :class:`SubmissionError` otherwise."""
    _check_shape(gold, data)
    try:
        pred = read_tsv_bytes(data, SOURCE, require_label="prediction",
                              known_labels=gold.inventory)
    except DataFormatError as exc:
        raise SubmissionError("the file is not a valid predictions TSV", [str(exc)]) from None
    problems = alignment_problems(gold.pairs, list(zip(pred.modifiers, pred.heads)),
                                  "the test set", "your file")
    if problems:
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"... and {len(problems) - MAX_PROBLEMS} more")
        raise SubmissionError(f"{len(problems)} mismatch(es) with the test set: list the same "
                              "compounds in the same order", shown)
    return list(pred.labels or [])


def score_upload(gold: Gold, data: bytes) -> Score:
    """Validate and score an upload on both parts; nothing is kept unless it all succeeds."""
    pred = parse_upload(gold, data)
    mask = gold.public
    g, p = np.asarray(gold.labels, object), np.asarray(pred, object)
    pub_f1, pub = _counts(list(g[mask]), list(p[mask]), gold.inventory)
    pri_f1, pri = _counts(list(g[~mask]), list(p[~mask]), gold.inventory)
    return Score(pub_f1, pri_f1, combine(pub, pri), pub, pri, len(pred),
                 hashlib.sha256(data).hexdigest())
