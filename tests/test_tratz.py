"""Tests for thetanet.data.tratz: strict TSV reading, splits and (offline) download."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from thetanet.data import tratz
from thetanet.data.paths import data_root
from thetanet.data.tratz import (
    COARSE_LABELS,
    FINE_LABELS,
    SPLITS,
    Compounds,
    DataFormatError,
    labels_for,
    load_split,
    read_compound_lines,
    read_tsv,
)

GOOD = "olive\toil\tSUBSTANCE-MATERIAL-INGREDIENT\nincome tax\trate\tTOPIC\n"


def write(tmp_path: Path, content: bytes | str, name: str = "f.tsv") -> Path:
    p = tmp_path / name
    p.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return p


# ------------------------------------------------------------------------- read_tsv


def test_read_good_file(tmp_path: Path) -> None:
    c = read_tsv(write(tmp_path, GOOD), known_labels=FINE_LABELS)
    assert len(c) == 2
    assert c.modifiers == ["olive", "income tax"]
    assert c.heads == ["oil", "rate"]
    assert c.labels == ["SUBSTANCE-MATERIAL-INGREDIENT", "TOPIC"]
    assert c.pairs() == [("olive", "oil"), ("income tax", "rate")]


def test_missing_final_newline_and_bom_are_fine(tmp_path: Path) -> None:
    c = read_tsv(write(tmp_path, b"\xef\xbb\xbf" + GOOD.rstrip("\n").encode()))
    assert c.modifiers[0] == "olive" and len(c) == 2


def test_unicode_words(tmp_path: Path) -> None:
    c = read_tsv(write(tmp_path, "café\tmenu\tTOPIC\n"))
    assert c.modifiers == ["café"]


BAD_CASES = [
    # (content, lineno, fragment of the problem, kwargs)
    (b"a\tb\tTOPIC\n\xff\xfe\tb\tTOPIC\n", 2, "invalid UTF-8", {}),
    ("a\tb\tTOPIC\r\nc\td\tTOPIC\r\n", 1, "CRLF", {}),
    ("a\tb\tTOPIC\n a\tb\tTOPIC\n", 2, "leading/trailing whitespace in modifier", {}),
    ("a\tb \tTOPIC\n", 1, "leading/trailing whitespace in head", {}),
    ("a\tb\tTOPIC \n", 1, "leading/trailing whitespace in relation", {}),
    ("a\tb\n", 1, "expected 3 TAB-separated columns", {}),
    ("a\tb\tTOPIC\na\tb\tTOPIC\textra\n", 2, "found 4 columns", {}),
    ("a b TOPIC\n", 1, "spaces instead of TABs", {}),
    ("a\tb\tTOPIC\n\tb\tTOPIC\n", 2, "empty modifier", {}),
    ("a\t\tTOPIC\n", 1, "empty head", {}),
    ("a\tb\t\n", 1, "empty relation", {}),
    ("a\tb\tTOPIK\n", 1, "unknown relation 'TOPIK'; did you mean 'TOPIC'",
     {"known_labels": FINE_LABELS}),
    ("", 1, "empty file", {}),
    ("\n", 1, "empty file", {}),
    ("a\tb\tTOPIC\n\nc\td\tTOPIC\n", 2, "blank line", {}),
    ("a\tb\tTOPIC\n   \nc\td\tTOPIC\n", 2, "blank line", {}),
    ("a\n", 1, "at least 2", {"require_label": False}),
    ("a\tb\nc\td\tTOPIC\n", 2, "earlier lines have 2", {"require_label": None}),
    ("a\tb\tc\td\n", 1, "2 or 3", {"require_label": None}),
    # a huge field is cut in the message (which stays one short line)
    ("a\tb\t" + "X" * 100_000 + "\n", 1, "... (100000 characters)", {"known_labels": FINE_LABELS}),
    ("a\t" + "y" * 5000 + " \tTOPIC\n", 1, "(5001 characters)", {}),
]  # fmt: skip


@pytest.mark.parametrize(("content", "lineno", "fragment", "kwargs"), BAD_CASES)
def test_malformed_files(
    tmp_path: Path, content: bytes | str, lineno: int, fragment: str, kwargs: dict
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(DataFormatError) as ei:
        read_tsv(path, **kwargs)
    msg = str(ei.value)
    assert msg.startswith(f"{path}:{lineno}: "), msg
    assert fragment in msg
    assert "\n" not in msg and len(msg) < len(str(path)) + 250
    assert isinstance(ei.value, ValueError)
    assert ei.value.lineno == lineno and ei.value.source == str(path)


def test_prediction_input_accepts_extra_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "a\tb\nc d\te\tanything\tmore\n")
    c = read_tsv(path, require_label=False)
    assert c.modifiers == ["a", "c d"] and c.heads == ["b", "e"] and c.labels is None


def test_prediction_files(tmp_path: Path) -> None:
    c = read_tsv(write(tmp_path, "a\tb\tTOPIC\t0.93\nc\td\tOTHER\n"), require_label="prediction")
    assert c.labels == ["TOPIC", "OTHER"]
    with pytest.raises(DataFormatError, match=r":2: expected at least 3"):
        read_tsv(write(tmp_path, "a\tb\tTOPIC\nc\td\n"), require_label="prediction")


def test_optional_labels(tmp_path: Path) -> None:
    assert read_tsv(write(tmp_path, "a\tb\nc\td\n"), require_label=None).labels is None
    assert read_tsv(write(tmp_path, GOOD), require_label=None).labels is not None


def test_compounds_length_mismatch() -> None:
    with pytest.raises(ValueError):
        Compounds(["a"], ["b", "c"], None)


# -------------------------------------------------------------- read_compound_lines


def test_read_compound_lines() -> None:
    c = read_compound_lines(["olive oil\n", "\n", "income tax\trate\n", "  apple   pie\r\n"])
    assert c.modifiers == ["olive", "income tax", "apple"]
    assert c.heads == ["oil", "rate", "pie"]
    assert c.labels is None


@pytest.mark.parametrize(
    ("lines", "lineno", "fragment"),
    [
        (["olive oil", "conflict of interest"], 2, "found 3 words"),
        (["olive"], 1, "found 1 word"),
        (["olive\t"], 1, "empty head"),
        (["olive \toil"], 1, "whitespace"),
    ],
)
def test_read_compound_lines_errors(lines: list[str], lineno: int, fragment: str) -> None:
    with pytest.raises(DataFormatError, match=f"^<stdin>:{lineno}: .*{fragment}"):
        read_compound_lines(lines)


# ------------------------------------------------------------------------ load_split


def test_labels_for() -> None:
    assert len(labels_for("fine_lexical")) == 37 and labels_for("fine_random") == FINE_LABELS
    assert len(labels_for("coarse_random")) == 12 and labels_for("coarse_lexical") == COARSE_LABELS
    with pytest.raises(ValueError, match="unknown split"):
        labels_for("medium_random")


SIZES = {
    "fine_random": (14369, 958),
    "fine_lexical": (4730, 1614),
    "coarse_random": (14093, 940),
    "coarse_lexical": (4746, 1619),
}


@pytest.mark.parametrize("split", SPLITS)
def test_load_split_sizes(split: str) -> None:
    if not (data_root() / "tratz" / split / "train.tsv").is_file():
        pytest.skip(f"Tratz data not found under {data_root()} (set THETANET_DATA)")
    train, val = load_split(split)
    assert (len(train), len(val)) == SIZES[split]
    assert set(train.labels or []) <= set(labels_for(split))
    assert set(val.labels or []) <= set(labels_for(split))


def test_one_set_of_split_names() -> None:
    """SPLITS is the one list of splits: the recipes, the published bests and the CLI's
    ``--split`` choices are keyed by it, in its order."""
    from thetanet.cli import build_parser
    from thetanet.compounds.recipes import PUBLISHED_BEST, SPLIT_RECIPES, recipe
    from thetanet.compounds.scoring import PUBLISHED_BEST as SHOWN_BEST

    assert tuple(SPLIT_RECIPES) == tuple(PUBLISHED_BEST) == SPLITS
    assert SHOWN_BEST is PUBLISHED_BEST
    assert all(0 < PUBLISHED_BEST[s] < 1 and recipe(s).features for s in SPLITS)
    nc = build_parser()._subparsers._group_actions[0].choices["nc"]  # type: ignore[union-attr]
    train = nc._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    (split_arg,) = [a for a in train._actions if "--split" in a.option_strings]
    assert tuple(split_arg.choices) == SPLITS


def test_load_split_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as ei:
        load_split("fine_random", tmp_path)
    msg = str(ei.value)
    assert str(tmp_path / "tratz" / "fine_random" / "train.tsv") in msg
    assert "THETANET_DATA" in msg and "--data-dir" in msg and "thetanet data fetch tratz" in msg


def test_load_split_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown split"):
        load_split("fine", tmp_path)


def test_load_split_validates_labels(tmp_path: Path) -> None:
    d = tmp_path / "tratz" / "coarse_random"
    d.mkdir(parents=True)
    (d / "train.tsv").write_text("a\tb\tpurpose\n")
    (d / "val.tsv").write_text("a\tb\tTOPIC\n")
    with pytest.raises(DataFormatError, match=r"val\.tsv:1: unknown relation 'TOPIC'"):
        load_split("coarse_random", tmp_path)


def test_real_checksums_match_shared_data() -> None:
    root = data_root() / "tratz"
    if not root.is_dir():
        pytest.skip("Tratz data not found (set THETANET_DATA)")
    for split, parts in tratz.SHA256.items():
        for part, digest in parts.items():
            p = root / split / f"{part}.tsv"
            if p.is_file():
                assert hashlib.sha256(p.read_bytes()).hexdigest() == digest, p
