"""The Tratz (2011) noun-compound relation dataset: strict TSV reading, splits, download.

Files are ``modifier<TAB>head<TAB>RELATION``, UTF-8, LF line endings, one compound a line.
Constituents may be multiword (``income tax<TAB>rate<TAB>...``), so only TAB separates
columns; a modifier or head is at most 100 characters (:data:`MAX_WORD_CHARS`) without
control characters. Every format problem raises :class:`DataFormatError` with a one-line
message ``"<path>:<lineno>: <problem>"``. The reading rules and the streaming reader used by
prediction (:func:`iter_compounds`) are in :mod:`thetanet.data.tsv`.

The splits live under ``<data root>/tratz/<split>/{train,val}.tsv`` where the data root is
:func:`thetanet.data.paths.data_root` (``--data-dir``, else ``$THETANET_DATA``, else the
per-user cache); ``thetanet data fetch tratz`` (:func:`download_split`) fetches them,
checksum-verified.
"""

from __future__ import annotations

import difflib
import io
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO

from thetanet.data.paths import data_root, missing_data_hint
from thetanet.data.tsv import (
    MAX_WORD_CHARS,
    Compounds,
    DataFormatError,
    check_field,
    column_problem,
    decode_line,
    iter_compounds,
    parse_word_lines,
    physical_lines,
    shown,
)

__all__ = [
    "COARSE_LABELS",
    "FINE_LABELS",
    "PARTS",
    "SHA256",
    "SPLITS",
    "Compounds",
    "DataFormatError",
    "MAX_WORD_CHARS",
    "download_split",
    "iter_compounds",
    "labels_for",
    "load_split",
    "read_compound_lines",
    "read_tsv",
    "read_tsv_bytes",
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


def labels_for(split: str) -> tuple[str, ...]:
    """The relation inventory of a split (37 fine-grained or 12 coarse relations)."""
    _check_split(split)
    return FINE_LABELS if split.startswith("fine") else COARSE_LABELS


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------

def _check_label(source: str, lineno: int, label: str, known: frozenset[str] | None) -> None:
    if known is not None and label not in known:
        close = difflib.get_close_matches(label, sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataFormatError(source, lineno, f"unknown relation {shown(label)}{hint}")


def read_tsv(
    path: str | os.PathLike[str],
    require_label: bool | str | None = True,
    known_labels: Iterable[str] | None = None,
) -> Compounds:
    """Read and strictly validate a compound TSV file (the rules of :mod:`thetanet.data.tsv`:
    words of at most :data:`MAX_WORD_CHARS` characters without control characters, …).

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
        with open(path, "rb") as fh:
            return _parse_stream(fh, source, require_label, known_labels)
    except IsADirectoryError:
        raise DataFormatError(source, 0, "is a directory, not a file") from None


def read_tsv_bytes(data: bytes, source: str = "<bytes>",
                   require_label: bool | str | None = True,
                   known_labels: Iterable[str] | None = None) -> Compounds:
    """:func:`read_tsv` on bytes already in memory (an upload); ``source`` names them in the
    ``"<source>:<lineno>: <problem>"`` messages."""
    return _parse_stream(io.BytesIO(data), source, require_label, known_labels)


def _expected_columns(require_label: bool | str | None) -> tuple[int, int | None, str]:
    """(least, most or None, description) of the columns a line must have."""
    if require_label is True:
        return 3, 3, "3 TAB-separated columns (modifier, head, relation)"
    if require_label == "prediction":
        return 3, None, "at least 3 TAB-separated columns (modifier, head, relation)"
    if require_label is False:
        return 2, None, "at least 2 TAB-separated columns (modifier, head)"
    return 2, 3, "2 or 3 TAB-separated columns (modifier, head[, relation])"


def _parse_stream(
    stream: IO[bytes],
    source: str,
    require_label: bool | str | None,
    known_labels: Iterable[str] | None,
) -> Compounds:
    known = frozenset(known_labels) if known_labels is not None else None
    least, most, expected = _expected_columns(require_label)
    keep = 3 if require_label in (True, "prediction", None) else 2
    mods: list[str] = []
    heads: list[str] = []
    labels: list[str] = []
    ncols_seen: int | None = None
    blank: list[int] = []  # blank lines since the last compound: fine at the end of a file
    for lineno, raw, newline in physical_lines(stream):
        line = decode_line(source, lineno, raw, newline, crlf_ok=False)
        if not line.strip():
            blank.append(lineno)
            continue
        if blank:
            raise DataFormatError(source, blank[0], "blank line")
        fields = line.split("\t")
        n = len(fields)
        if n < least or (most is not None and n > most):
            raise DataFormatError(source, lineno, column_problem(n, line, expected))
        if require_label is None:
            if ncols_seen is None:
                ncols_seen = n
            elif n != ncols_seen:
                raise DataFormatError(
                    source, lineno, f"found {n} columns but earlier lines have {ncols_seen}")
        fields = fields[:keep]
        for k, field in enumerate(fields):
            check_field(source, lineno, k, field)
        mods.append(fields[0])
        heads.append(fields[1])
        if len(fields) == 3:
            _check_label(source, lineno, fields[2], known)
            labels.append(fields[2])
    if not mods:
        raise DataFormatError(source, 1, "empty file (no compounds)")
    has_labels = require_label in (True, "prediction") or (
        require_label is None and ncols_seen == 3)
    return Compounds(mods, heads, labels if has_labels else None)


def read_compound_lines(lines: Iterable[str | bytes], source: str = "<stdin>") -> Compounds:
    """Parse ``modifier head`` lines (e.g. typed on stdin) into unlabelled compounds.

    A line is either two space-separated words, or ``modifier<TAB>head[<TAB>...]`` (the only
    way to give multiword constituents). Blank lines are skipped and line endings
    (``\\n`` or ``\\r\\n``) are stripped; words are checked as in :func:`read_tsv`.
    Problems raise :class:`DataFormatError`. For a stream, :func:`iter_compounds` with
    ``dialect="words"`` reads it chunk by chunk.
    """
    return parse_word_lines(lines, source)


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


def copy_url(split: str, part: str, copy: str) -> str:
    """URL of one file of a split in a copy of a data root (``<copy>/tratz/<split>/<part>.tsv``,
    the layout ``thetanet data fetch`` writes); ``copy``: a URL or a local folder."""
    from thetanet.data.paths import copy_base_url

    _check_split(split)
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; choose from {', '.join(PARTS)}")
    return f"{copy_base_url(copy)}/tratz/{split}/{part}.tsv"


def missing_files(splits: Sequence[str], parts: Sequence[str],
                  data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The files of ``splits`` × ``parts`` not (yet) in the data root."""
    return [split_dir(s, data_dir) / f"{p}.tsv" for s in splits for p in parts
            if not (split_dir(s, data_dir) / f"{p}.tsv").is_file()]


def download_split(
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    parts: Sequence[str] = ("train", "val", "test"),
    overwrite: bool = False,
    base_url: str = BASE_URL,
    copy: str | None = None,
    progress: bool = True,
    stream: IO[str] | None = None,
) -> Path:
    """Download a split's files into ``<data root>/tratz/<split>/`` and return that directory.

    Each file streams into a temp file beside its target and is checked (sha256 for
    train/val; the test checksum is unknown here, so test is only validated as a well-formed
    TSV) before it is renamed into place: a failed check or an interrupted download leaves
    no file behind. Existing files with the right checksum are kept; a mismatching existing
    file raises unless ``overwrite``. ``base_url``: a mirror of the panic repository's
    ``classification/data`` folder; ``copy``: instead, a copy of a data root (a URL or a local
    folder holding ``tratz/<split>/<part>.tsv``), verified the same way. Offline,
    :class:`~thetanet.data.fetch.FetchError` says in one line which command to run later and
    which folder to fill by hand.
    """
    from thetanet.data.fetch import FetchError, download, sha256_file

    directory = split_dir(split, data_dir)
    known = labels_for(split)

    def well_formed(url: str) -> Callable[[bytes], None]:
        def check(data: bytes) -> None:
            read_tsv_bytes(data, url, True, known)  # a well-formed file, whatever its checksum

        return check

    for part in parts:
        url = copy_url(split, part, copy) if copy else split_url(split, part, base_url)
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
