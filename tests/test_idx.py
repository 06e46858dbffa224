"""IDX reader/writer, MNIST reading and content verification (the downloads themselves are
tested against a local HTTP server in test_data_fetch.py)."""

import gzip
import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from thetanet.data import idx
from thetanet.data.idx import IdxFormatError, decode_idx, encode_idx, read_idx, write_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_file(tmp_path, rng, dtype, suffix):
    arr = (rng.normal(size=(3, 4, 5)) * 50).astype(dtype)
    path = write_idx(tmp_path / f"a-idx3{suffix}", arr)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == (suffix == ".gz")
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    assert back.shape == arr.shape
    assert np.array_equal(back, arr)
    back[0, 0, 0] = 1  # a writable copy


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(st.sampled_from([np.uint8, np.int16, np.float32]),
                  hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5)))
def test_round_trip_bytes_property(arr):
    back = decode_idx(encode_idx(arr))
    assert back.shape == arr.shape and back.dtype == arr.dtype
    assert np.array_equal(back, arr, equal_nan=arr.dtype.kind == "f")


def test_header_layout_is_big_endian():
    raw = encode_idx(np.array([[1, 2, 3], [4, 5, 6]], np.int16))
    assert raw[:4] == bytes([0, 0, 0x0B, 2])
    assert raw[4:12] == (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    assert raw[12:14] == (1).to_bytes(2, "big")
    assert len(raw) == 12 + 6 * 2


def test_unsupported_dtype_is_refused():
    with pytest.raises(ValueError, match="cannot store"):
        encode_idx(np.zeros(3, np.int64))


def test_wrong_magic():
    raw = bytearray(encode_idx(np.zeros((2, 2), np.uint8)))
    raw[0] = 0x12
    with pytest.raises(IdxFormatError, match="not an IDX file.*two zero bytes"):
        decode_idx(bytes(raw), "f")
    raw[0] = 0
    raw[2] = 0x0A
    with pytest.raises(IdxFormatError, match="unknown IDX element type 0x0a"):
        decode_idx(bytes(raw), "f")


def test_expected_kind_mismatch_names_both_magic_numbers():
    labels = encode_idx(np.zeros(5, np.uint8))
    with pytest.raises(IdxFormatError, match="0x00000801.*expected 0x00000803"):
        decode_idx(labels, "labels-as-images", ndim=3, type_code=0x08)


def test_truncated_data_and_header():
    raw = encode_idx(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    with pytest.raises(IdxFormatError, match=r"truncated data.*\(20 of 24 elements\)"):
        decode_idx(raw[:-4], "cut")
    with pytest.raises(IdxFormatError, match="truncated header"):
        decode_idx(raw[:9], "cut")
    with pytest.raises(IdxFormatError, match="too short"):
        decode_idx(raw[:3], "cut")
    huge = bytes([0, 0, 8, 3]) + b"\xff" * 12 + bytes(64)  # corrupt sizes: 2^32 - 1 each
    with pytest.raises(IdxFormatError, match="truncated data"):
        decode_idx(huge, "corrupt")


def test_trailing_bytes():
    raw = encode_idx(np.zeros(4, np.uint8)) + b"\x00"
    with pytest.raises(IdxFormatError, match="1 unexpected bytes"):
        decode_idx(raw, "long")


def test_truncated_gzip(tmp_path):
    path = write_idx(tmp_path / "x.gz", np.arange(1000, dtype=np.int32))
    bad = tmp_path / "bad.gz"
    bad.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(IdxFormatError, match=r"bad\.gz: truncated or corrupt gzip"):
        read_idx(bad)


def test_gzip_bomb_is_refused_and_members_concatenate():
    arr = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    raw = encode_idx(arr)
    bomb = gzip.compress(b"\0" * 10_000)
    with pytest.raises(IdxFormatError, match=r"bomb\.gz: decompresses to more than 4096 bytes"):
        idx._gunzip(bomb, "bomb.gz", limit=4096)
    # two gzip members (what `cat a.gz b.gz` makes) are one stream, as gzip reads them
    two = gzip.compress(raw[:10]) + gzip.compress(raw[10:])
    np.testing.assert_array_equal(decode_idx(two), arr)
    assert idx._gunzip(two, "x", limit=len(raw)) == raw
    with pytest.raises(IdxFormatError, match="decompresses to more than"):
        idx._gunzip(two, "x", limit=len(raw) - 1)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="IDX file not found"):
        read_idx(tmp_path / "nope")


def _mnist_files(directory, n_images, n_labels, side=28, split="t10k", label_max=9):
    rng = np.random.default_rng(0)
    d = directory / "mnist"
    write_idx(d / f"{split}-images-idx3-ubyte.gz",
              rng.integers(0, 256, (n_images, side, side), dtype=np.uint8))
    write_idx(d / f"{split}-labels-idx1-ubyte",
              rng.integers(0, label_max + 1, n_labels, dtype=np.uint8))
    return d


def test_count_mismatch(tmp_path):
    d = _mnist_files(tmp_path, 5, 4)
    with pytest.raises(IdxFormatError, match="count mismatch: .* 5 images but .* 4 labels"):
        idx.read_mnist_pair(d / "t10k-images-idx3-ubyte.gz", d / "t10k-labels-idx1-ubyte")


def test_read_mnist_checks_the_published_count(tmp_path):
    _mnist_files(tmp_path, 6, 6)
    with pytest.raises(IdxFormatError, match="expected 10000 images, found 6"):
        idx.read_mnist("t10k", tmp_path)


def test_mnist_image_size_and_label_range(tmp_path):
    d = _mnist_files(tmp_path, 3, 3, side=27)
    with pytest.raises(IdxFormatError, match="28×28"):
        idx.read_mnist_pair(d / "t10k-images-idx3-ubyte.gz", d / "t10k-labels-idx1-ubyte")
    d = _mnist_files(tmp_path / "b", 3, 300, label_max=200)
    with pytest.raises(IdxFormatError, match="digits 0..9"):
        idx.decode_mnist_labels((d / "t10k-labels-idx1-ubyte").read_bytes())


def test_read_mnist_missing_says_where(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"MNIST train not found.*mnist.*--data-dir"):
        idx.read_mnist("train", tmp_path)
    with pytest.raises(ValueError, match="unknown MNIST split"):
        idx.read_mnist("test", tmp_path)


# ---- the real t10k (shared, read-only) ------------------------------------------------------


@pytest.fixture(scope="module")
def t10k_blobs(mnist_root):
    root = mnist_root / "mnist"
    paths = [root / f"{n}.gz" for n in idx.MNIST_FILES["t10k"]]
    if not all(p.is_file() for p in paths):
        pytest.skip(f"MNIST t10k not present under {root}")
    return {n: p.read_bytes() for n, p in zip(idx.MNIST_FILES["t10k"], paths)}


def test_real_t10k(mnist_root):
    images, labels = idx.read_mnist("t10k", mnist_root)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert tuple(np.bincount(labels, minlength=10)) == idx.MNIST_LABEL_COUNTS["t10k"]
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert images.max() == 255
    assert (images[:, 0, :] == 0).mean() > 0.99  # MNIST's (almost always) empty border


def test_pinned_sha256_is_of_the_decompressed_content(t10k_blobs):
    for name, blob in t10k_blobs.items():
        raw = gzip.decompress(blob)
        assert hashlib.sha256(raw).hexdigest() == idx.MNIST_SHA256[name]
        assert hashlib.sha256(blob).hexdigest() != idx.MNIST_SHA256[name]
        idx.verify_mnist_content(name, raw, name)


def test_train_files_verified_by_structure_and_label_counts():
    counts = idx.MNIST_LABEL_COUNTS["train"]
    labels = np.repeat(np.arange(10, dtype=np.uint8), counts)
    with pytest.raises(IdxFormatError, match="sha256"):  # right counts, sorted: not MNIST's
        idx.verify_mnist_content("train-labels-idx1-ubyte", encode_idx(labels))
    labels[0] = 1  # one label moved from 0 to 1
    with pytest.raises(IdxFormatError, match="per-digit label counts"):
        idx.verify_mnist_content("train-labels-idx1-ubyte", encode_idx(labels))
    with pytest.raises(IdxFormatError, match="expected 60000 labels"):
        idx.verify_mnist_content("train-labels-idx1-ubyte", encode_idx(labels[:-1]))
    with pytest.raises(IdxFormatError, match="expected 60000 images, found 7"):
        idx.verify_mnist_content("train-images-idx3-ubyte", encode_idx(np.zeros((7, 28, 28),
                                                                                np.uint8)))
    assert sum(counts) == 60000
