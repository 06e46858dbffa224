"""``thetanet nc predict``, streaming: read, featurise, predict and write chunk by chunk.

Memory is bounded by one chunk (:data:`~thetanet.data.tsv.CHUNK_LINES` compounds), not by the
input: a million lines run like ten thousand. The input is a TSV file (``modifier<TAB>head``,
strict) or stdin (``modifier head`` lines); a first line ``modifier<TAB>head`` (any case) is
a header and skipped, a UTF-8 byte-order mark is dropped. Strict by default: the first bad
line stops everything (exit 2; a ``--output`` file is left as it was, stdout has the lines
before it). ``--skip-bad-lines`` skips bad lines instead and reports them on stderr.
The output follows :func:`thetanet.files.open_output` (regular files atomically, a FIFO,
terminal or device written in place).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from thetanet.data.tsv import DataFormatError, iter_compounds
from thetanet.files import open_output

__all__ = ["LOW_CONFIDENCE", "Guesses", "SkipLog", "load", "predict"]

#: A prediction whose probability is below this is flagged as low-confidence.
LOW_CONFIDENCE = 0.3


class SkipLog:
    """The bad lines ``--skip-bad-lines`` skipped: how many, and the first few."""

    def __init__(self, keep: int = 20) -> None:
        self.count = 0
        self.first: list[DataFormatError] = []
        self.keep = keep

    def append(self, error: DataFormatError) -> None:
        self.count += 1
        if len(self.first) < self.keep:
            self.first.append(error)

    def report(self, stream: IO[str]) -> None:
        for error in self.first:
            print(f"thetanet nc predict: skipped {error}", file=stream)
        if self.count:
            more = f" ({self.count - len(self.first):,} not shown)" if self.count > len(
                self.first) else ""
            print(f"thetanet nc predict: skipped {self.count:,} bad line"
                  f"{'s' if self.count != 1 else ''}{more} (--skip-bad-lines)", file=stream)


class Guesses:
    """Compounds with a word no representation knows (their relation is a guess) and
    low-confidence predictions, counted over the whole stream with a few examples."""

    def __init__(self, shown: int = 5) -> None:
        self.total = 0
        self.shown = shown
        self.unknown: list[str] = []
        self.n_unknown = 0
        self.low: list[str] = []
        self.n_low = 0

    def add(self, clf: Any, chunk: Any, probs: Any) -> None:
        self.total += len(chunk)
        unknown = np.flatnonzero(~clf.known_words(chunk).all(axis=1))
        low = np.flatnonzero(np.asarray(probs) < LOW_CONFIDENCE)
        self.n_unknown += len(unknown)
        self.n_low += len(low)
        for idx, names in ((unknown, self.unknown), (low, self.low)):
            for i in idx[: self.shown - len(names)]:
                names.append(f"'{chunk.modifiers[i]} {chunk.heads[i]}'")

    def _some(self, names: list[str], n: int) -> str:
        return ", ".join(names) + (", …" if n > len(names) else "")

    def report(self, stream: IO[str]) -> None:
        if self.n_unknown:
            print(f"warning: {self.n_unknown:,} of {self.total:,} compounds have a word that "
                  f"none of this model's representations knows; their relations are guesses: "
                  f"{self._some(self.unknown, self.n_unknown)}", file=stream)
        if self.n_low:
            print(f"warning: {self.n_low:,} of {self.total:,} predictions have probability < "
                  f"{LOW_CONFIDENCE} (low confidence): {self._some(self.low, self.n_low)}",
                  file=stream)


@contextlib.contextmanager
def _source(path: str) -> Iterator[tuple[IO[bytes], str, str]]:
    """(binary stream, name for messages, dialect) of ``--input``."""
    if path == "-":
        yield sys.stdin.buffer, "<stdin>", "words"
        return
    try:
        fh = open(path, "rb")  # a FIFO or /dev/stdin streams too; lines are bounded
    except IsADirectoryError:
        raise DataFormatError(path, 0, "is a directory, not a file") from None
    with fh:
        yield fh, path, "tsv"


#: Seconds between two progress lines of a long prediction (none before the first interval).
PROGRESS_EVERY = 5.0


class Ticker:
    """A line on stderr at most every ``every`` seconds (the first after ``every``): how many
    compounds are done, so a long prediction is not silent and a short one says nothing."""

    def __init__(self, every: float, stream: IO[str] | None = None) -> None:
        self.every, self.stream = float(every), stream
        self.start = self.last = time.monotonic()

    def tick(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            rate = done / max(now - self.start, 1e-9)
            print(f"nc predict: {done:,} compounds so far ({rate:,.0f}/s)",
                  file=self.stream or sys.stderr, flush=True)


@contextlib.contextmanager
def _sink(path: str) -> Iterator[IO[str]]:
    if path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    with open_output(path) as fh:
        yield fh


def load(path: str, cache_dir: Any) -> Any:
    """The model at ``path`` (what loading warns about reaches stderr as one line each: see
    :mod:`thetanet.cli`)."""
    from thetanet.compounds.system import NCClassifier

    return NCClassifier.load(path, cache_dir=cache_dir)


def predict(args: argparse.Namespace, clf: Any) -> int:
    """Stream ``args.input`` through ``clf`` into ``args.output``."""
    skipped = SkipLog() if args.skip_bad_lines else None
    guesses = Guesses()
    written = 0
    ticker = Ticker(every=PROGRESS_EVERY)
    with _source(args.input) as (stream, source, dialect), _sink(args.output) as out:
        chunks = iter_compounds(stream, source, dialect, header=True, skipped=skipped)
        for chunk, labels, probs in clf.predict_chunks(chunks):
            out.write("".join(f"{m}\t{h}\t{lab}\t{p:.6f}\n" for m, h, lab, p in
                              zip(chunk.modifiers, chunk.heads, labels, probs)))
            written += len(labels)
            guesses.add(clf, chunk, probs)
            ticker.tick(written)
    if skipped is not None:
        skipped.report(sys.stderr)
    guesses.report(sys.stderr)
    if args.output != "-":  # stdout holds the lines themselves; a file needs a word
        print(f"wrote {written:,} prediction line(s) to {args.output}", file=sys.stderr)
    return 0
