"""Strict, streaming reading of noun-compound files (``modifier<TAB>head[<TAB>relation]``).

Two dialects share one line reader:

- ``"tsv"``: files. UTF-8, LF line endings, TAB-separated columns (a constituent may be
  multiword, ``income tax<TAB>rate``); blank lines are errors except at the end;
- ``"words"``: what a user types on stdin. ``modifier head`` (two space-separated words) or
  ``modifier<TAB>head[<TAB>...]``; blank lines are skipped and a CRLF ending is accepted.

In both, every word (modifier, head) is at most :data:`MAX_WORD_CHARS` characters and holds no
control character (Unicode category Cc — NUL, C0, DEL, C1 — nor the line/paragraph separators
U+2028/U+2029); a physical line is at most :data:`MAX_LINE_BYTES` bytes, so memory stays
bounded whatever the input (``/dev/zero`` included). A UTF-8 byte-order mark opening the input
is dropped. A first line holding ``\\r`` but no ``\\n`` is reported as "CR line endings", a
``\\r\\n`` ending in a file as "CRLF". Every problem is a :class:`DataFormatError` whose message
is one line, ``"<source>:<line>: <problem>"``; :func:`iter_compounds` can instead collect them
and skip the bad lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

__all__ = ["CHUNK_LINES", "HEADER", "MAX_LINE_BYTES", "MAX_WORD_CHARS", "Compounds",
           "DataFormatError", "iter_compounds", "word_problem"]

#: Longest modifier or head accepted, in characters (Tratz's longest is 20).
MAX_WORD_CHARS = 100
#: Longest physical line accepted, in bytes.
MAX_LINE_BYTES = 1 << 20
#: Compounds per chunk of :func:`iter_compounds` (what prediction holds in memory at once).
CHUNK_LINES = 8192
#: A first line whose first two fields are these (any case) is a header: skipped when
#: :func:`iter_compounds` is asked to (``header=True``, what ``nc predict`` does).
HEADER = ("modifier", "head")

_BOM = b"\xef\xbb\xbf"
_BAD_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_FIELD_NAMES = ("modifier", "head", "relation")


class DataFormatError(ValueError):
    """A malformed data file; the message is one line: ``"<path>:<lineno>: <problem>"``."""

    def __init__(self, source: str | Any, lineno: int, problem: str) -> None:
        self.source = str(source)
        self.lineno = lineno
        self.problem = problem
        super().__init__(f"{self.source}:{lineno}: {problem}")


@dataclass
class Compounds:
    """Parallel lists of modifiers, heads and (optionally) relation labels."""

    modifiers: list[str]
    heads: list[str]
    labels: list[str] | None = None

    def __post_init__(self) -> None:
        n = len(self.modifiers)
        if len(self.heads) != n or (self.labels is not None and len(self.labels) != n):
            raise ValueError("modifiers, heads and labels must have the same length")

    def __len__(self) -> int:
        return len(self.modifiers)

    def pairs(self) -> list[tuple[str, str]]:
        """The compounds as ``(modifier, head)`` tuples."""
        return list(zip(self.modifiers, self.heads))


def shown(text: str, limit: int = 60) -> str:
    """``repr(text)``, cut to about ``limit`` characters: an error message stays one line."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def word_problem(word: str) -> str | None:
    """What is wrong with ``word`` as a modifier or head (``None``: nothing)."""
    if len(word) > MAX_WORD_CHARS:
        return f"longer than {MAX_WORD_CHARS} characters ({len(word)})"
    bad = _BAD_CHAR.search(word)
    if bad:
        return f"control character U+{ord(bad.group()):04X} at position {bad.start() + 1}"
    return None


def check_field(source: str, lineno: int, k: int, field: str) -> None:
    """Column ``k`` (0-based) of a line: not blank, no surrounding whitespace, a valid word."""
    name = _FIELD_NAMES[k] if k < len(_FIELD_NAMES) else f"column {k + 1}"
    if not field.strip():
        what = "empty" if not field else "blank"
        raise DataFormatError(source, lineno, f"{what} {name} (column {k + 1})")
    if field != field.strip():
        raise DataFormatError(
            source, lineno,
            f"leading/trailing whitespace in {name} (column {k + 1}): {shown(field)}")
    problem = word_problem(field) if k < 2 else (
        f"control character U+{ord(m.group()):04X}" if (m := _BAD_CHAR.search(field)) else None)
    if problem:
        raise DataFormatError(source, lineno, f"{name} (column {k + 1}) {shown(field, 30)}: "
                                              f"{problem}")


def column_problem(found: int, line: str, expected: str) -> str:
    msg = f"expected {expected}, found {found} column{'s' if found != 1 else ''}"
    if found == 1 and " " in line:
        msg += " (fields separated by spaces instead of TABs?)"
    return msg


# --------------------------------------------------------------------------------------------
# Lines
# --------------------------------------------------------------------------------------------

def physical_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes | None, bool]]:
    """``(lineno, line without its "\\n", whether a "\\n" ended it)``; the line is ``None``
    when longer than :data:`MAX_LINE_BYTES` (the rest of it is skipped, never held)."""
    lineno = 0
    while raw := stream.readline(MAX_LINE_BYTES + 1):
        lineno += 1
        if lineno == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM):]
        if raw.endswith(b"\n"):
            yield lineno, raw[:-1], True
        elif len(raw) <= MAX_LINE_BYTES:
            yield lineno, raw, False
        else:  # too long: say so at once (the rest may never end: /dev/zero), skip it after
            yield lineno, None, False
            while raw and not raw.endswith(b"\n"):
                raw = stream.readline(1 << 16)


def decode_line(source: str, lineno: int, raw: bytes | None, newline: bool,
                crlf_ok: bool) -> str:
    """One physical line as text: UTF-8, its line ending checked."""
    if raw is None:
        raise DataFormatError(source, lineno, f"line longer than {MAX_LINE_BYTES} bytes")
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataFormatError(source, lineno, f"invalid UTF-8 (byte 0x{raw[e.start]:02x} at "
                                              f"column {e.start + 1})") from None
    if newline and line.endswith("\r"):
        if not crlf_ok:
            raise DataFormatError(source, lineno, "CRLF line ending (convert the file to LF, "
                                                  "e.g. with dos2unix)")
        line = line[:-1]
    if "\r" in line:
        if lineno == 1:
            raise DataFormatError(source, lineno, "CR line endings (\\r without \\n; convert "
                                                  "the file to LF, e.g. with tr '\\r' '\\n')")
        raise DataFormatError(source, lineno, "stray carriage return (\\r) in line")
    return line


def split_words(source: str, lineno: int, line: str) -> tuple[str, str]:
    """A ``"words"`` line: ``modifier head`` or ``modifier<TAB>head[<TAB>...]``."""
    if "\t" in line:
        fields = line.split("\t")
        for k, field in enumerate(fields[:2]):
            check_field(source, lineno, k, field)
        return fields[0], fields[1]
    words = line.split()
    if len(words) != 2:
        raise DataFormatError(
            source, lineno,
            f"expected 'modifier head' (2 words), found {len(words)} word"
            f"{'s' if len(words) != 1 else ''}: {shown(line.strip())} "
            "(separate multiword constituents with a TAB)")
    for k, word in enumerate(words):
        check_field(source, lineno, k, word)
    return words[0], words[1]


def _is_header(line: str) -> bool:
    fields = line.split("\t") if "\t" in line else line.split()
    return tuple(f.strip().lower() for f in fields[:2]) == HEADER


def iter_compounds(stream: IO[bytes], source: str, dialect: str = "tsv", *,
                   chunk_lines: int = CHUNK_LINES, header: bool = False,
                   skipped: list[DataFormatError] | None = None) -> Iterator[Compounds]:
    """Unlabelled compounds from a binary ``stream``, ``chunk_lines`` at a time.

    ``dialect``: ``"tsv"`` (``modifier<TAB>head[<TAB>anything...]``, strict) or ``"words"``
    (see the module). ``header``: skip a first line whose first two fields are
    :data:`HEADER`. ``skipped``: when a list, each bad line's error is appended to it and the
    line skipped; otherwise the first one is raised. Memory: one chunk, one line.
    """
    if dialect not in ("tsv", "words"):
        raise ValueError(f"unknown dialect {dialect!r}")
    if isinstance(chunk_lines, bool) or not isinstance(chunk_lines, int) or chunk_lines < 1:
        raise ValueError(f"chunk_lines must be a positive integer, got {chunk_lines!r}")
    words = dialect == "words"
    mods: list[str] = []
    heads: list[str] = []
    blank: list[int] = []  # blank lines seen since the last compound (fine at the end)
    found = False
    for lineno, raw, newline in physical_lines(stream):
        try:
            line = decode_line(source, lineno, raw, newline, crlf_ok=words)
            if not line.strip():
                if not words:
                    blank.append(lineno)
                continue
            if blank:
                first, blank = blank[0], []
                if skipped is None:
                    raise DataFormatError(source, first, "blank line")
                skipped.append(DataFormatError(source, first, "blank line"))
            if lineno == 1 and header and _is_header(line):
                continue
            if words:
                mod, head = split_words(source, lineno, line)
            else:
                fields = line.split("\t")
                if len(fields) < 2:
                    raise DataFormatError(source, lineno, column_problem(
                        len(fields), line, "at least 2 TAB-separated columns (modifier, head)"))
                for k, field in enumerate(fields[:2]):
                    check_field(source, lineno, k, field)
                mod, head = fields[0], fields[1]
        except DataFormatError as exc:
            if skipped is None:
                raise
            skipped.append(exc)
            continue
        found = True
        mods.append(mod)
        heads.append(head)
        if len(mods) >= chunk_lines:
            yield Compounds(mods, heads, None)
            mods, heads = [], []
    if mods:
        yield Compounds(mods, heads, None)
    elif not found and not words and skipped is None:
        raise DataFormatError(source, 1, "empty file (no compounds)")


def parse_word_lines(lines: Iterable[str | bytes], source: str) -> Compounds:
    """``"words"`` lines given as strings (or bytes), line endings included or not."""
    mods: list[str] = []
    heads: list[str] = []
    for lineno, line in enumerate(lines, start=1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataFormatError(source, lineno, f"invalid UTF-8 ({e.reason})") from None
        line = line.rstrip("\n").rstrip("\r")
        if lineno == 1:
            line = line.removeprefix("\ufeff")
        if not line.strip():
            continue
        mod, head = split_words(source, lineno, line)
        mods.append(mod)
        heads.append(head)
    return Compounds(mods, heads, None)
