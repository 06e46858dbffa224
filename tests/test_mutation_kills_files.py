"""File-reading behaviour that mutation testing found unpinned (issue 18; the mutants each test
kills are listed in benchmarks/results/mutation.md): the size and digit bounds at their exact
limits, refusals that say what the path is, and errors that name the target and the cause."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from thetanet import Dense, Sequential
from thetanet.checkpoint import CHECKPOINT_NAME
from thetanet.files import MAX_INT_DIGITS, ModelFileError, atomic_write_bytes, read_json
from thetanet.saving import doc_digest


def test_a_json_file_of_exactly_max_bytes_is_read(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text('"' + "a" * 98 + '"')  # 100 bytes
    assert read_json(path, "doc", max_bytes=100) == "a" * 98
    with pytest.raises(ModelFileError, match="too large"):
        read_json(path, "doc", max_bytes=99)


def test_integers_of_max_int_digits_are_read_longer_ones_refused(tmp_path):
    path = tmp_path / "n.json"
    big = "9" * MAX_INT_DIGITS
    path.write_text(f"[{big}, -{big}]")
    assert read_json(path) == [int(big), -int(big)]
    for longer in (f"[{big}9]", f"[-{big}9]", f"[{big}99]"):  # one digit over, either sign
        path.write_text(longer)
        with pytest.raises(ModelFileError, match="digits"):
            read_json(path)


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_path_that_is_no_regular_file_is_refused_saying_what_it_is(tmp_path, kind):
    path = tmp_path / "config.json"
    if kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs on this platform")
        os.mkfifo(path)  # reading it would block forever: it must be refused before opening
        what = "a FIFO"
    else:
        path.mkdir()
        what = "a directory"
    with pytest.raises(ModelFileError, match=f"is {what}, not a checkpoint file"):
        read_json(path, "checkpoint")


def test_a_missing_or_corrupt_document_says_which_and_why(tmp_path):
    with pytest.raises(ModelFileError, match="checkpoint not found"):
        read_json(tmp_path / "nope.json", "checkpoint")
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": ')
    with pytest.raises(ModelFileError, match=r"corrupt checkpoint \(Expecting value"):
        read_json(bad, "checkpoint")


def test_a_write_into_a_missing_directory_names_the_target(tmp_path):
    target = tmp_path / "missing" / "model.npz"
    with pytest.raises(FileNotFoundError) as info:
        atomic_write_bytes(target, b"x")
    assert info.value.filename == str(target) and info.value.strerror


# -- a stored optimiser state is checked entry by entry -----------------------------------------

def _checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 3)).astype(np.float32), rng.integers(0, 2, 12)
    model = Sequential([Dense(2, "softmax")], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, checkpoint=tmp_path)
    return x, y


def _tamper(tmp_path, edit) -> None:
    """Edit the stored training state and sign the document again (only the checks behind
    the checksum can refuse it then)."""
    cfile = tmp_path / CHECKPOINT_NAME
    doc = json.loads(cfile.read_text())
    edit(doc["state"]["optimizer"])
    doc["sha256"] = doc_digest(doc)
    cfile.write_text(json.dumps(doc))


@pytest.mark.parametrize("edit,why", [
    (lambda opt: opt.update(extra=1), "wrong entries"),
    (lambda opt: opt.update(v=[]), "partly missing"),
])
def test_a_stored_optimiser_state_with_odd_entries_is_refused(tmp_path, edit, why):
    x, y = _checkpoint(tmp_path)
    _tamper(tmp_path, edit)
    model = Sequential([Dense(2, "softmax")], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ModelFileError, match=why):
        model.fit(x, y, epochs=2, batch_size=4, verbose=0, checkpoint=tmp_path, resume=True)
