r"""The IDX file format (MNIST's) — strict reader, writer — and MNIST download and cache.

An IDX file is a 4-byte magic number ``00 00 TT DD`` (TT: element type, DD: number of
dimensions), DD big-endian uint32 sizes, then the elements in C order, big-endian. MNIST uses
``0x00000803`` (uint8 images, n × 28 × 28) and ``0x00000801`` (uint8 labels, n). Files may be
gzip-compressed (``*.gz``, recognised by content, not by name).

Every problem — wrong magic, unknown type, truncated data, trailing bytes, a count that does not
match — raises :class:`IdxFormatError` (a ``ValueError``) naming the file and what was expected.

MNIST lives under ``<data root>/mnist/`` (data root: ``--data-dir``, else ``$THETANET_DATA``,
else the per-user cache; see :mod:`thetanet.data.paths`). ``thetanet data fetch mnist``
(:func:`download_mnist`) fetches the four files from the public mirrors. The mirrors' ``.gz``
bytes differ (some were re-compressed), so downloads are verified by the SHA-256 of their
*decompressed* content, pinned for all four files (:data:`MNIST_SHA256`), besides structure,
counts and the published per-digit label counts. While a file streams in, its IDX header and
inflated size are checked block by block (:mod:`thetanet.data.idx_stream`), so a wrong file
stops at once and a gzip bomb never inflates past the expected size.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from thetanet.data.idx_stream import IdxStreamCheck, mnist_header
from thetanet.data.paths import data_root, missing_data_hint

__all__ = [
    "IDX_TYPES",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "IdxFormatError",
    "decode_idx",
    "download_mnist",
    "encode_idx",
    "find_mnist_file",
    "mnist_available",
    "mnist_dir",
    "read_idx",
    "read_mnist",
    "write_idx",
]


class IdxFormatError(ValueError):
    """A file that is not a valid IDX file, or not the IDX file that was expected."""


#: IDX element type code → NumPy dtype (big-endian as stored).
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _is_gzip(data: bytes) -> bool:
    return data[:2] == _GZIP_MAGIC


#: Largest decompressed IDX file accepted (the full MNIST training images are 47 MB): a
#: small crafted .gz must not be able to expand into all of memory.
MAX_IDX_BYTES = 1 << 30


def _gunzip(data: bytes, source: str, limit: int = MAX_IDX_BYTES) -> bytes:
    parts: list[bytes] = []
    size = 0
    rest = data
    try:
        while rest:  # gzip members may be concatenated
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = d.decompress(rest, limit + 1 - size)
            size += len(chunk)
            parts.append(chunk)
            if size > limit:
                raise IdxFormatError(f"{source}: decompresses to more than {limit} bytes; "
                                     "refusing (not an IDX file this reader accepts)")
            if not d.eof:
                raise EOFError("compressed data ended before the end-of-stream marker")
            rest = d.unused_data.lstrip(b"\0")
    except (EOFError, zlib.error) as exc:
        raise IdxFormatError(f"{source}: truncated or corrupt gzip data ({exc})") from exc
    return b"".join(parts)


def decode_idx(data: bytes, source: str = "<bytes>", *, ndim: int | None = None,
               type_code: int | None = None) -> np.ndarray:
    """Parse IDX bytes (gzip-compressed or not) into a native-endian array.

    ``ndim`` / ``type_code``, when given, are required of the header (e.g. 3 and 0x08 for MNIST
    images); a mismatch raises :class:`IdxFormatError` naming both magic numbers.
    """
    if _is_gzip(data):
        data = _gunzip(data, source)
    if len(data) < 4:
        raise IdxFormatError(f"{source}: too short for an IDX file ({len(data)} bytes, the "
                             "magic number alone is 4)")
    if data[0] != 0 or data[1] != 0:
        raise IdxFormatError(f"{source}: not an IDX file: the magic number must start with two "
                             f"zero bytes, got {data[:4].hex(' ')}")
    code, dims = data[2], data[3]
    magic = int.from_bytes(data[:4], "big")
    if code not in IDX_TYPES:
        raise IdxFormatError(f"{source}: unknown IDX element type 0x{code:02x} in magic number "
                             f"0x{magic:08x} (known: "
                             f"{', '.join(f'0x{c:02x}' for c in IDX_TYPES)})")
    want_code = code if type_code is None else type_code
    want_dims = dims if ndim is None else ndim
    if code != want_code or dims != want_dims:
        want = (want_code << 8) | want_dims
        raise IdxFormatError(f"{source}: wrong magic number 0x{magic:08x} (type 0x{code:02x}, "
                             f"{dims} dimensions); expected 0x{want:08x} (type "
                             f"0x{want_code:02x}, {want_dims} dimensions)")
    if dims == 0:
        raise IdxFormatError(f"{source}: IDX header declares 0 dimensions")
    header = 4 + 4 * dims
    if len(data) < header:
        raise IdxFormatError(f"{source}: truncated header: {dims} dimension sizes need "
                             f"{header} bytes, the file has {len(data)}")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    dtype = IDX_TYPES[code]
    count = math.prod(shape)  # Python ints: no overflow on a corrupt header
    need = header + count * dtype.itemsize
    if len(data) < need:
        raise IdxFormatError(f"{source}: truncated data: shape {shape} needs {need} bytes, the "
                             f"file has {len(data)} ({(len(data) - header) // dtype.itemsize} "
                             f"of {count} elements)")
    if len(data) > need:
        raise IdxFormatError(f"{source}: {len(data) - need} unexpected bytes after the "
                             f"{count} elements of shape {shape}")
    if math.prod(d for d in shape if d) * dtype.itemsize > 2**40:  # numpy could not hold it
        raise IdxFormatError(f"{source}: implausible dimensions {shape} in the header")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def encode_idx(array: Any) -> bytes:
    """IDX bytes for ``array`` (dtype uint8, int8, int16, int32, float32 or float64)."""
    arr = np.asarray(array)
    native = arr.dtype.newbyteorder("=")
    if native not in _CODES:
        raise ValueError(f"IDX cannot store dtype {arr.dtype}; use one of "
                         f"{', '.join(str(d.newbyteorder('=')) for d in IDX_TYPES.values())}")
    if not 1 <= arr.ndim <= 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got {arr.ndim}")
    code = _CODES[native]
    if any(n >= 2**32 for n in arr.shape):
        raise ValueError(f"IDX dimension sizes must fit in 32 bits, got {arr.shape}")
    header = bytes([0, 0, code, arr.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in arr.shape)
    return header + np.ascontiguousarray(arr, dtype=IDX_TYPES[code]).tobytes()


def read_idx(path: str | os.PathLike[str], *, ndim: int | None = None,
             type_code: int | None = None) -> np.ndarray:
    """Read an IDX file (plain or gzip) into a native-endian array; see :func:`decode_idx`."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"IDX file not found: {p}") from None
    return decode_idx(data, str(p), ndim=ndim, type_code=type_code)


def _atomic_write(path: Path, data: bytes) -> None:
    from thetanet.files import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)


def write_idx(path: str | os.PathLike[str], array: Any) -> Path:
    """Write ``array`` as IDX to ``path`` (gzip-compressed when the name ends in ``.gz``),
    atomically. Returns the path."""
    p = Path(path)
    data = encode_idx(array)
    if p.suffix == ".gz":
        data = gzip.compress(data, compresslevel=6, mtime=0)
    _atomic_write(p, data)
    return p


# --------------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------------

#: split → (image file, label file), names without ``.gz``.
MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_COUNTS = {"train": 60000, "t10k": 10000}
#: Examples per digit 0..9, as published.
MNIST_LABEL_COUNTS: dict[str, tuple[int, ...]] = {
    "train": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    "t10k": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
}
#: sha256 of the decompressed IDX content (the .gz bytes differ between mirrors). The train
#: values were computed from the decompressed files of the published MNIST training set (as
#: shipped in a package on PyPI, whose t10k files match the t10k values here and whose label
#: counts match MNIST_LABEL_COUNTS) and agree with the values other projects publish.
MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
#: Public mirrors, tried in order.
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


def mnist_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<data root>/mnist``."""
    return data_root(data_dir) / "mnist"


def find_mnist_file(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The path of MNIST file ``name`` (plain or ``.gz``) in :func:`mnist_dir`, or None."""
    d = mnist_dir(data_dir)
    for candidate in (d / name, d / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def mnist_available(split: str, data_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether both files of ``split`` ("train" or "t10k") are in the data root."""
    _check_split(split)
    return all(find_mnist_file(n, data_dir) is not None for n in MNIST_FILES[split])


def mnist_state(split: str, data_dir: str | os.PathLike[str] | None = None) -> str:
    """``"ok"`` when both files of ``split`` are present and verified (the pinned sha256 of
    their content), else what is wrong: ``"missing"`` or the first problem found."""
    _check_split(split)
    for name in MNIST_FILES[split]:
        path = find_mnist_file(name, data_dir)
        if path is None:
            return "missing"
        try:
            verify_mnist_content(name, _maybe_gunzip(path.read_bytes(), str(path)), str(path))
        except (IdxFormatError, OSError) as exc:
            return f"invalid ({str(exc)[:160]})"
    return "ok"


def _check_split(split: str) -> None:
    if split not in MNIST_FILES:
        raise ValueError(f"unknown MNIST split {split!r}; choose from {', '.join(MNIST_FILES)}")


def _check_images(images: np.ndarray, source: str) -> None:
    if images.shape[1:] != (28, 28):
        raise IdxFormatError(f"{source}: MNIST images must be 28×28, got "
                             f"{images.shape[1]}×{images.shape[2]}")


def _check_labels(labels: np.ndarray, source: str) -> None:
    if labels.size and labels.max() > 9:
        raise IdxFormatError(f"{source}: MNIST labels must be digits 0..9, found "
                             f"{int(labels.max())}")


def decode_mnist_images(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """uint8 images (n, 28, 28) from IDX bytes with magic 0x00000803."""
    images = decode_idx(data, source, ndim=3, type_code=0x08)
    _check_images(images, source)
    return images


def decode_mnist_labels(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """uint8 labels (n,) from IDX bytes with magic 0x00000801."""
    labels = decode_idx(data, source, ndim=1, type_code=0x08)
    _check_labels(labels, source)
    return labels


def read_mnist_pair(images_path: str | os.PathLike[str], labels_path: str | os.PathLike[str],
                    expected_count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 28, 28) uint8 and labels (n,) uint8 from two IDX files, checked to match."""
    images = decode_mnist_images(Path(images_path).read_bytes(), str(images_path))
    labels = decode_mnist_labels(Path(labels_path).read_bytes(), str(labels_path))
    if images.shape[0] != labels.shape[0]:
        raise IdxFormatError(f"count mismatch: {images_path} has {images.shape[0]} images but "
                             f"{labels_path} has {labels.shape[0]} labels")
    if expected_count is not None and images.shape[0] != expected_count:
        raise IdxFormatError(f"{images_path}: expected {expected_count} images, found "
                             f"{images.shape[0]}")
    return images, labels


def read_mnist(split: str = "t10k", data_dir: str | os.PathLike[str] | None = None,
               download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """MNIST ``split`` ("train": 60,000 images, "t10k": 10,000) from ``<data root>/mnist/``.

    Returns uint8 images (n, 28, 28) and uint8 labels (n,). Missing files raise
    ``FileNotFoundError`` saying where they were looked for, unless ``download`` is true.
    """
    _check_split(split)
    if download and not mnist_available(split, data_dir):
        download_mnist([split], data_dir)
    paths = [find_mnist_file(n, data_dir) for n in MNIST_FILES[split]]
    if any(p is None for p in paths):
        d = mnist_dir(data_dir)
        missing = [n for n, p in zip(MNIST_FILES[split], paths) if p is None]
        hint = missing_data_hint("mnist", d, [f"{n}.gz" for n in MNIST_FILES[split]], data_dir)
        raise FileNotFoundError(
            f"MNIST {split} not found: no {' or '.join(f'{m}[.gz]' for m in missing)} in {d}; "
            f"{hint}; `thetanet digits --download` fetches it too.")
    return read_mnist_pair(paths[0], paths[1], MNIST_COUNTS[split])  # type: ignore[arg-type]


def verify_mnist_content(name: str, raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Check the decompressed content of MNIST file ``name``; return its array.

    Structure, count, for labels the published per-digit counts, and the sha256 pinned in
    :data:`MNIST_SHA256`. Raises :class:`IdxFormatError` on any difference.
    """
    split = name.split("-", 1)[0]
    _check_split(split)
    is_images = "images" in name
    arr = (decode_mnist_images if is_images else decode_mnist_labels)(raw, source)
    if arr.shape[0] != MNIST_COUNTS[split]:
        raise IdxFormatError(f"{source}: expected {MNIST_COUNTS[split]} "
                             f"{'images' if is_images else 'labels'}, found {arr.shape[0]}")
    if not is_images:
        counts = tuple(int(c) for c in np.bincount(arr, minlength=10))
        if counts != MNIST_LABEL_COUNTS[split]:
            raise IdxFormatError(f"{source}: per-digit label counts {counts} differ from the "
                                 f"published {MNIST_LABEL_COUNTS[split]}")
    got = hashlib.sha256(raw).hexdigest()  # last: the messages above say more
    if got != MNIST_SHA256[name]:
        raise IdxFormatError(f"{source}: decompressed sha256 {got} differs from the "
                             f"published {MNIST_SHA256[name]}")
    return arr


def _expected_size(name: str) -> tuple[bytes, int]:
    """The IDX header and the decompressed size of MNIST file ``name``."""
    split = name.split("-", 1)[0]
    images = "images" in name
    header = mnist_header(images, MNIST_COUNTS[split])
    return header, len(header) + MNIST_COUNTS[split] * (28 * 28 if images else 1)


def stream_check(name: str, url: str) -> IdxStreamCheck:
    """The fetcher's ``watch`` for MNIST file ``name``: header and size while it streams."""
    header, size = _expected_size(name)
    return IdxStreamCheck(url, header, size, IdxFormatError)


def _stored_form(name: str, url: str) -> Callable[[bytes], bytes | None]:
    """The fetcher's content check for MNIST file ``name``: verify the decompressed content;
    keep a gzip payload as served, compress a plain one (files are stored as ``.gz``)."""
    def check(blob: bytes) -> bytes | None:
        raw = _gunzip(blob, url, _expected_size(name)[1]) if _is_gzip(blob) else blob
        verify_mnist_content(name, raw, url)
        return None if _is_gzip(blob) else gzip.compress(blob, compresslevel=6, mtime=0)

    return check


def download_mnist(splits: Sequence[str] = ("train", "t10k"),
                   data_dir: str | os.PathLike[str] | None = None, *,
                   mirrors: Sequence[str] = MNIST_MIRRORS, overwrite: bool = False,
                   progress: bool = True, stream: IO[str] | None = None) -> Path:
    """Fetch MNIST into ``<data root>/mnist/`` as ``<name>.gz``; return that directory.

    Each file is taken from the first mirror whose download passes
    :func:`verify_mnist_content`; it streams into a temp file beside its target and is renamed
    into place only after the check, so a failed or interrupted download leaves nothing
    behind. Files already present and valid are kept; an invalid existing file raises unless
    ``overwrite``. When no mirror gives a valid file, :class:`~thetanet.data.fetch.FetchError`
    (a ``ConnectionError``) says in one line what each mirror did and how to get the file.
    """
    from thetanet.data.fetch import FetchError, download

    directory = mnist_dir(data_dir)
    for split in splits:
        _check_split(split)
        for name in MNIST_FILES[split]:
            existing = find_mnist_file(name, data_dir)
            if existing is not None and not overwrite:
                try:
                    verify_mnist_content(name, _maybe_gunzip(existing.read_bytes(),
                                                             str(existing)), str(existing))
                except IdxFormatError as exc:
                    raise IdxFormatError(f"{exc}; pass overwrite=True (or delete the file) to "
                                         "download it again") from exc
                continue
            errors: list[str] = []
            network_only = True  # every mirror unreachable (rather than serving wrong bytes)
            for base in mirrors:
                url = f"{base.rstrip('/')}/{name}.gz"
                try:
                    download(url, directory / f"{name}.gz", check=_stored_form(name, url),
                             progress=progress, stream=stream, timeout=120.0,
                             watch=stream_check(name, url))
                except FetchError as exc:
                    errors.append(f"{url}: {exc.reason}")
                    continue
                except IdxFormatError as exc:
                    errors.append(str(exc))
                    network_only = False
                    continue
                if existing is not None and existing.name != f"{name}.gz":
                    existing.unlink()  # a stale plain file must not shadow the new one
                break
            else:
                hint = missing_data_hint("mnist", directory, [f"{name}.gz"], data_dir,
                                         offline=network_only)
                reason = f"no mirror gave a valid file ({'; '.join(errors)})"
                raise FetchError(f"{name}.gz", reason, hint)
    return directory


def _maybe_gunzip(data: bytes, source: str) -> bytes:
    return _gunzip(data, source) if _is_gzip(data) else data
