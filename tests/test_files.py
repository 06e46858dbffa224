"""Crash-safe file primitives (thetanet.files): locks and bounded .npz reading."""

import os

import numpy as np
import pytest

from thetanet.files import (
    ModelFileError,
    atomic_write_text,
    load_arrays,
    locked_dir,
    read_json,
    save_arrays,
)

fcntl = pytest.importorskip("fcntl")


def _try_lock(path, mode):
    """Whether another open file description of ``path`` gets the lock at once."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_locked_dir_excludes_writers_and_lets_readers_share(tmp_path):
    d = tmp_path / "d"
    with locked_dir(d):  # a writer: created, held exclusively
        assert not _try_lock(d, fcntl.LOCK_EX) and not _try_lock(d, fcntl.LOCK_SH)
    assert _try_lock(d, fcntl.LOCK_EX)  # released on exit
    with locked_dir(d, shared=True):  # a reader: other readers yes, writers no
        assert _try_lock(d, fcntl.LOCK_SH) and not _try_lock(d, fcntl.LOCK_EX)
    with locked_dir(tmp_path / "missing", shared=True):  # a reader of nothing: no lock
        assert not (tmp_path / "missing").exists()


def test_atomic_write_and_bounded_json(tmp_path):
    atomic_write_text(tmp_path / "a.json", '{"x": [1, 2]}')
    assert read_json(tmp_path / "a.json") == {"x": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temp file left
    (tmp_path / "b.json").write_text("[" * 100_000)
    with pytest.raises(ModelFileError, match="b.json: corrupt"):
        read_json(tmp_path / "b.json")


def test_save_load_arrays_round_trip_odd_layouts(tmp_path):
    arrays = {"f": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
              "big": np.arange(5, dtype=">i4"), "empty": np.zeros((0, 3), np.float32),
              "scalar": np.asarray(3.5), "flag": np.array([True, False])}
    save_arrays(tmp_path / "a.npz", arrays)
    back = load_arrays(tmp_path / "a.npz")
    for k, a in arrays.items():
        assert back[k].shape == a.shape and np.array_equal(back[k], a)
        assert back[k].dtype.isnative and back[k].flags.writeable
    with pytest.raises(TypeError, match="object"):
        save_arrays(tmp_path / "b.npz", {"o": np.array([None], dtype=object)})
