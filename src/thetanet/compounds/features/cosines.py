"""Word-to-word cosine products shared by the blocks that compare the same words.

The pair-bilinear block and the neighbour blocks each compare a compound's words with the
training words of a word space: V Tᵀ for the unit vectors V of the query words and T of the
training words. With fine_lexical's recipe three blocks compute that very product for every
chunk (their spaces share the dense part, MiniLM ⊕ glosses, and their tables the training
words). :class:`Products` keeps the last few products, keyed by what they depend on — the
extractors' classes and cache settings (the per-word rows depend on nothing else), the
query words and the table's words — so the second and third block read the first one's (the
dense part, and in a space with WordNet the WordNet part).

Bounded: at most ``max_entries`` products, each under the blocks' own bound (``MAX_WORD_CELLS``
cells), so memory stays bounded on any stream. Thread-safe (the refit runs in a second
thread). The arrays handed out are read-only: a caller that changes one copies it first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np

__all__ = ["Products", "SHARED"]


class Products:
    """The last ``max_entries`` products, by key (least recently used dropped first)."""

    def __init__(self, max_entries: int = 8) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries!r}")
        self.max_entries = int(max_entries)
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The product for ``key``: kept, or ``compute()`` (then kept). Read-only."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return found
        value = compute()  # outside the lock: the other thread need not wait for a GEMM
        value.setflags(write=False)
        with self._lock:
            self.misses += 1
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


#: The products shared by every word space of the process.
SHARED = Products()
