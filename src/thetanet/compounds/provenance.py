"""What a model was trained on: a compact digest of its compounds, and overlap counts.

A model records the compounds it was trained on, and those it was selected on (val, which
chose its epochs), as sorted arrays of 64-bit hashes of ``"modifier<TAB>head"`` (lower-cased),
stored base64 in its report (8 bytes per compound: ~120 KB for the largest split; a chance
collision between two compounds has probability ~n²/2⁶⁵). ``nc evaluate`` and ``nc score``
count how many compounds of a file the model has seen, so a score on seen data is never taken
for a held-out result.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Overlap", "compound_digest", "compound_hashes", "decode_digest", "encode_digest",
           "overlap"]


def _key_hash(modifier: str, head: str) -> int:
    key = f"{modifier.strip().lower()}\t{head.strip().lower()}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def compound_hashes(modifiers: Iterable[str], heads: Iterable[str]) -> np.ndarray:
    """One uint64 hash per compound, in order."""
    return np.fromiter((_key_hash(m, h) for m, h in zip(modifiers, heads)), np.uint64)


def compound_digest(modifiers: Iterable[str], heads: Iterable[str]) -> np.ndarray:
    """The sorted distinct hashes of the compounds (what a model stores)."""
    return np.unique(compound_hashes(modifiers, heads))


def encode_digest(digest: np.ndarray) -> dict[str, Any]:
    """A JSON-able form: ``{"compounds": n, "blake2b64": base64 of little-endian uint64}``."""
    data = np.ascontiguousarray(digest, dtype="<u8").tobytes()
    return {"compounds": int(digest.size), "blake2b64": base64.b64encode(data).decode("ascii")}


def decode_digest(doc: Mapping[str, Any]) -> np.ndarray:
    """The array :func:`encode_digest` stored (ValueError when it is malformed)."""
    try:
        raw = base64.b64decode(doc["blake2b64"], validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed training-data digest: {exc}") from exc
    if len(raw) % 8 or len(raw) // 8 != int(doc.get("compounds", len(raw) // 8)):
        raise ValueError("malformed training-data digest: wrong length")
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64)


@dataclass(frozen=True)
class Overlap:
    """Of ``total`` compounds: ``trained`` were in the training data, ``selected`` in the data
    that chose the epochs (val, when it was not trained on), ``seen`` either."""

    total: int
    trained: int
    selected: int

    @property
    def seen(self) -> int:
        return self.trained + self.selected

    def as_json(self) -> dict[str, int]:
        return {"seen": self.seen, "total": self.total, "trained": self.trained,
                "selected": self.selected}

    def warning(self, what: str) -> str | None:
        """A sentence for the user, or None when nothing was seen."""
        if not self.seen:
            return None
        parts = []
        if self.trained:
            parts.append(f"{self.trained:,} of {self.total:,} compounds in {what} were in this "
                         f"model's training data")
        if self.selected:
            parts.append(f"{self.selected:,} of {self.total:,} compounds in {what} are the "
                         f"validation data that chose this model's epochs")
        return ("; ".join(parts) + ": this score is not a held-out result and is not "
                "comparable with published (test) scores")


def overlap(modifiers: Iterable[str], heads: Iterable[str], trained: np.ndarray,
            selected: np.ndarray | None = None) -> Overlap:
    """How many of the compounds are in the digest ``trained`` (or else in ``selected``)."""
    hashes = compound_hashes(modifiers, heads)
    in_train = np.isin(hashes, trained)
    in_sel = (~in_train & np.isin(hashes, selected)) if selected is not None else in_train & False
    return Overlap(int(hashes.size), int(in_train.sum()), int(in_sel.sum()))
