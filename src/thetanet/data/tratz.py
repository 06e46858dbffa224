"""The Tratz (2011) noun-compound relation dataset: strict TSV reading, splits, download.

Files are ``modifier<TAB>head<TAB>RELATION``, UTF-8, LF line endings, one compound a line.
Constituents may be multiword (``income tax<TAB>rate<TAB>...``), so only TAB separates
columns. Every format problem raises :class:`DataFormatError` with a one-line message
``"<path>:<lineno>: <problem>"``.

The splits live under ``<data root>/tratz/<split>/{train,val}.tsv`` where the data root is
:func:`thetanet.data.paths.data_root` (``--data-dir``, else ``$THETANET_DATA``, else the
per-user cache); ``thetanet data fetch tratz`` (:func:`download_split`) fetches them,
checksum-verified.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from thetanet.data.paths import data_root, missing_data_hint

__all__ = [
    "COARSE_LABELS",
    "FINE_LABELS",
    "PARTS",
    "SHA256",
    "SPLITS",
    "Compounds",
    "DataFormatError",
    "download_split",
    "labels_for",
    "load_split",
    "read_compound_lines",
    "read_tsv",
    "split_dir",
]

SPLITS = ("fine_random", "fine_lexical", "coarse_random", "coarse_lexical")
PARTS = ("train", "val", "test")

FINE_LABELS: tuple[str, ...] = (
    "ADJ-LIKE_NOUN", "AMOUNT-OF", "CONTAIN", "CREATE-PROVIDE-GENERATE-SELL",
    "CREATOR-PROVIDER-CAUSE_OF", "EMPLOYER", "EQUATIVE", "EXPERIENCER-OF-EXPERIENCE",
    "JUSTIFICATION", "LEXICALIZED", "LOCATION", "MEANS", "MEASURE", "MITIGATE&OPPOSE",
    "OBJECTIVE", "OBTAIN&ACCESS&SEEK", "ORGANIZE&SUPERVISE&AUTHORITY", "OTHER", "OWNER-USER",
    "PART&MEMBER_OF_COLLECTION&CONFIG&SERIES", "PARTIAL_ATTRIBUTE_TRANSFER",
    "PERFORM&ENGAGE_IN", "PERSONAL_NAME", "PERSONAL_TITLE", "PURPOSE",
    "RELATIONAL-NOUN-COMPLEMENT", "SUBJECT", "SUBSTANCE-MATERIAL-INGREDIENT", "TIME-OF1",
    "TIME-OF2", "TOPIC", "TOPIC_OF_COGNITION&EMOTION", "TOPIC_OF_EXPERT", "USER_RECIPIENT",
    "VARIETY&GENUS_OF", "WHOLE+ATTRIBUTE&FEATURE&QUALITY_VALUE_IS_CHARACTERISTIC_OF",
    "WHOLE+PART_OR_MEMBER_OF",
)  # fmt: skip
COARSE_LABELS: tuple[str, ...] = (
    "attribute", "causal", "cause", "complement", "containment", "loc_part_whole",
    "objective", "other", "owner_emp_use", "purpose", "time", "topical",
)  # fmt: skip

#: sha256 of the published files (train/val as in the shared data README). The public test
#: files are held out in this project, so their checksums are unknown here: a downloaded
#: test file is only checked for a valid format.
SHA256: dict[str, dict[str, str]] = {
    "fine_random": {
        "train": "c18c039ace737243cc59007086e4c7712fb3f6bc1427ebabdbfd4ff929f54610",
        "val": "84159068b14950ae383e574b39786bf6a3f159f86450085531b446b0eec79ad1",
    },
    "fine_lexical": {
        "train": "0cf6c714673ed73f2a072d37fa0395d704ad27f43658cee0e0e32c8b8e886336",
        "val": "f1cca384ca3a8d056958bc01b6632f170722b38a814d7463abad22f79e38032c",
    },
    "coarse_random": {
        "train": "16fd408336719eace516e1fed135179e1dcea73a0715ef48743543c7d7232237",
        "val": "a6319ebdfce911a2eb23b704362527ba07abda202a25ce5c9bda5f266139c270",
    },
    "coarse_lexical": {
        "train": "70cc6072814b37aff7d0e03164fca864917fd18b3eed2bef97b380ac8fe8d4a2",
        "val": "ebebef9b165633bdc0c7216651eea441a8ee828d4947e318f2997854da968124",
    },
}

BASE_URL = "https://raw.githubusercontent.com/vered1986/panic/master/classification/data"


class DataFormatError(ValueError):
    """A malformed data file; the message is one line: ``"<path>:<lineno>: <problem>"``."""

    def __init__(self, source: str | os.PathLike[str], lineno: int, problem: str) -> None:
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


def labels_for(split: str) -> tuple[str, ...]:
    """The relation inventory of a split (37 fine-grained or 12 coarse relations)."""
    _check_split(split)
    return FINE_LABELS if split.startswith("fine") else COARSE_LABELS


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------

_FIELD_NAMES = ("modifier", "head", "relation")


def _shown(text: str, limit: int = 60) -> str:
    """``repr(text)``, cut to about ``limit`` characters: an error message stays one line."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def _check_field(source: str, lineno: int, k: int, field: str) -> None:
    name = _FIELD_NAMES[k] if k < len(_FIELD_NAMES) else f"column {k + 1}"
    if not field.strip():
        what = "empty" if not field else "blank"
        raise DataFormatError(source, lineno, f"{what} {name} (column {k + 1})")
    if field != field.strip():
        raise DataFormatError(
            source, lineno,
            f"leading/trailing whitespace in {name} (column {k + 1}): {_shown(field)}"
        )


def _column_problem(found: int, line: str, expected: str) -> str:
    msg = f"expected {expected}, found {found} column{'s' if found != 1 else ''}"
    if found == 1 and " " in line:
        msg += " (fields separated by spaces instead of TABs?)"
    return msg


def _check_label(source: str, lineno: int, label: str, known: frozenset[str] | None) -> None:
    if known is not None and label not in known:
        close = difflib.get_close_matches(label, sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataFormatError(source, lineno, f"unknown relation {_shown(label)}{hint}")


def read_tsv(
    path: str | os.PathLike[str],
    require_label: bool | str | None = True,
    known_labels: Iterable[str] | None = None,
) -> Compounds:
    """Read and strictly validate a compound TSV file.

    ``require_label="prediction"``: a predictions file, ``modifier, head, relation[, ...]``
    (e.g. with a probability column); columns after the third are ignored.
    ``require_label=True``: gold/train file, exactly 3 columns ``modifier, head, relation``.
    ``require_label=False``: prediction input, ``modifier<TAB>head[<TAB>anything...]``;
    extra columns are ignored and ``labels`` is ``None``.
    ``require_label=None``: 2 or 3 columns, the same on every line; labels are returned
    when there are 3.
    ``known_labels``: if given, every relation must be one of them.
    """
    path = Path(path)
    source = str(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise DataFormatError(source, 0, "is a directory, not a file") from None
    return _parse_bytes(data, source, require_label, known_labels)


def _parse_bytes(
    data: bytes,
    source: str,
    require_label: bool | str | None,
    known_labels: Iterable[str] | None,
) -> Compounds:
    known = frozenset(known_labels) if known_labels is not None else None
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark: harmless, drop it
        data = data[3:]
    raw_lines = data.split(b"\n")
    # Trailing empty lines (normally just the final newline) are fine.
    while raw_lines and raw_lines[-1].strip(b" \t") == b"" and b"\r" not in raw_lines[-1]:
        raw_lines.pop()
    if not raw_lines:
        raise DataFormatError(source, 1, "empty file (no compounds)")

    mods: list[str] = []
    heads: list[str] = []
    labels: list[str] = []
    ncols_seen: int | None = None
    for lineno, raw in enumerate(raw_lines, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataFormatError(
                source, lineno, f"invalid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
            ) from None
        if line.endswith("\r"):
            raise DataFormatError(
                source, lineno, "CRLF line ending (convert the file to LF, e.g. with dos2unix)"
            )
        if "\r" in line:
            raise DataFormatError(source, lineno, "stray carriage return (\\r) in line")
        if not line.strip():
            raise DataFormatError(source, lineno, "blank line")
        fields = line.split("\t")
        n = len(fields)
        if require_label is True:
            if n != 3:
                raise DataFormatError(
                    source,
                    lineno,
                    _column_problem(n, line, "3 TAB-separated columns (modifier, head, relation)"),
                )
        elif require_label == "prediction":
            if n < 3:
                raise DataFormatError(
                    source,
                    lineno,
                    _column_problem(
                        n, line, "at least 3 TAB-separated columns (modifier, head, relation)"
                    ),
                )
            fields = fields[:3]
        elif require_label is False:
            if n < 2:
                raise DataFormatError(
                    source,
                    lineno,
                    _column_problem(n, line, "at least 2 TAB-separated columns (modifier, head)"),
                )
            fields = fields[:2]
        else:
            if n not in (2, 3):
                raise DataFormatError(
                    source,
                    lineno,
                    _column_problem(
                        n, line, "2 or 3 TAB-separated columns (modifier, head[, relation])"
                    ),
                )
            if ncols_seen is None:
                ncols_seen = n
            elif n != ncols_seen:
                raise DataFormatError(
                    source, lineno, f"found {n} columns but earlier lines have {ncols_seen}"
                )
        for k, field in enumerate(fields):
            _check_field(source, lineno, k, field)
        mods.append(fields[0])
        heads.append(fields[1])
        if len(fields) == 3:
            _check_label(source, lineno, fields[2], known)
            labels.append(fields[2])
    has_labels = require_label in (True, "prediction") or (
        require_label is None and ncols_seen == 3
    )
    return Compounds(mods, heads, labels if has_labels else None)


def read_compound_lines(lines: Iterable[str], source: str = "<stdin>") -> Compounds:
    """Parse ``modifier head`` lines (e.g. typed on stdin) into unlabelled compounds.

    A line is either two space-separated words, or ``modifier<TAB>head[<TAB>...]`` (the only
    way to give multiword constituents). Blank lines are skipped and line endings
    (``\\n`` or ``\\r\\n``) are stripped. Problems raise :class:`DataFormatError`.
    """
    mods: list[str] = []
    heads: list[str] = []
    for lineno, line in enumerate(lines, start=1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataFormatError(source, lineno, f"invalid UTF-8 ({e.reason})") from None
        line = line.rstrip("\n").rstrip("\r")
        if not line.strip():
            continue
        if "\t" in line:
            fields = line.split("\t")
            if len(fields) < 2:  # pragma: no cover - a TAB always gives two fields
                raise DataFormatError(source, lineno, "expected modifier<TAB>head")
            for k, field in enumerate(fields[:2]):
                _check_field(source, lineno, k, field)
            mod, head = fields[0], fields[1]
        else:
            words = line.split()
            if len(words) != 2:
                raise DataFormatError(
                    source,
                    lineno,
                    f"expected 'modifier head' (2 words), found {len(words)} word"
                    f"{'s' if len(words) != 1 else ''}: {_shown(line.strip())} "
                    "(separate multiword constituents with a TAB)",
                )
            mod, head = words
        mods.append(mod)
        heads.append(head)
    return Compounds(mods, heads, None)


# --------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")


def split_dir(split: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding a split's files: ``<data root>/tratz/<split>``."""
    _check_split(split)
    return data_root(data_dir) / "tratz" / split


def load_split(
    split: str, data_dir: str | os.PathLike[str] | None = None
) -> tuple[Compounds, Compounds]:
    """Load ``(train, val)`` of a split, validated against the split's relation inventory."""
    directory = split_dir(split, data_dir)
    paths = [directory / "train.tsv", directory / "val.tsv"]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        hint = missing_data_hint("tratz", directory, ["train.tsv", "val.tsv"], data_dir)
        raise FileNotFoundError(
            f"Tratz split {split!r} not found: no {', '.join(map(str, missing))}; {hint}."
        )
    known = labels_for(split)
    train = read_tsv(paths[0], require_label=True, known_labels=known)
    val = read_tsv(paths[1], require_label=True, known_labels=known)
    return train, val


# --------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------


def split_url(split: str, part: str, base_url: str = BASE_URL) -> str:
    """URL of one file of a split (in the vered1986/panic repository unless ``base_url``)."""
    _check_split(split)
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; choose from {', '.join(PARTS)}")
    granularity, kind = split.split("_")
    return f"{base_url.rstrip('/')}/tratz_{granularity}_grained_{kind}/{part}.tsv"


def download_split(
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    parts: Sequence[str] = ("train", "val", "test"),
    overwrite: bool = False,
    base_url: str = BASE_URL,
    progress: bool = True,
    stream: IO[str] | None = None,
) -> Path:
    """Download a split's files into ``<data root>/tratz/<split>/`` and return that directory.

    Each file streams into a temp file beside its target and is checked (sha256 for
    train/val; the test checksum is unknown here, so test is only validated as a well-formed
    TSV) before it is renamed into place: a failed check or an interrupted download leaves
    no file behind. Existing files with the right checksum are kept; a mismatching existing
    file raises unless ``overwrite``. ``base_url``: a mirror of the panic repository's
    ``classification/data`` folder. Offline, :class:`~thetanet.data.fetch.FetchError` says
    in one line which command to run later and which folder to fill by hand.
    """
    from thetanet.data.fetch import FetchError, download, sha256_file

    directory = split_dir(split, data_dir)
    known = labels_for(split)

    def well_formed(url: str) -> Callable[[bytes], None]:
        def check(data: bytes) -> None:
            _parse_bytes(data, url, True, known)  # a well-formed file, whatever its checksum

        return check

    for part in parts:
        url = split_url(split, part, base_url)
        target = directory / f"{part}.tsv"
        expected = SHA256[split].get(part)
        if target.is_file() and not overwrite:
            if expected is None:
                continue
            have = sha256_file(target)
            if have == expected:
                continue
            raise ValueError(
                f"{target} exists but its sha256 {have} differs from the published {expected}; "
                "pass overwrite=True (or delete the file) to replace it"
            )
        try:
            download(url, target, sha256=expected, check=well_formed(url), progress=progress,
                     stream=stream)
        except FetchError as exc:
            files = [f"{p}.tsv" for p in parts]
            raise exc.with_hint(missing_data_hint("tratz", directory, files, data_dir,
                                                  offline=True)) from None
    return directory
