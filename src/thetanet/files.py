"""Crash-safe file primitives used by everything in thetanet that writes or reads files.

- atomic writes (:func:`atomic_write_with`, :func:`atomic_write_bytes`,
  :func:`atomic_write_text`): a temp file next to the target, fsync, one ``os.replace``;
- :func:`locked_dir`: an advisory lock on a directory (writers exclusive, readers shared);
- bounded readers: :func:`save_arrays` / :func:`load_arrays` for ``.npz`` files of plain
  numeric arrays (never pickle: headers checked, sizes bounded, zip bombs refused) and
  :func:`read_json` for JSON documents of bounded size.

Every reading problem raises :class:`ModelFileError` naming the offending file. The formats built
on these (models, checkpoints) live in :mod:`thetanet.saving` and :mod:`thetanet.checkpoint`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: Largest JSON document read (config.json, checkpoint.json), in bytes.
MAX_JSON_BYTES = 64 * 2**20
#: Most members accepted in one ``.npz``.
MAX_NPZ_MEMBERS = 10_000
#: Largest ``.npy`` header accepted (numpy's own default limit).
MAX_NPY_HEADER = 10_000
#: A deflated member may expand at most this much (thetanet writes uncompressed members).
MAX_COMPRESSION_RATIO = 200
_MEMBER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,200}\.npy")
_SAFE_KINDS = "biuf"

try:  # POSIX advisory locks; elsewhere writers are not serialised (still atomic per file)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class ModelFileError(ValueError):
    """A file is missing, corrupt, tampered with, unsafe or from an unknown format."""


# --------------------------------------------------------------------------------------------
# Atomic writes and locks
# --------------------------------------------------------------------------------------------

def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort; not possible everywhere)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platform without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_with(path: str | os.PathLike[str], write: Any) -> None:
    """Create a temp file next to ``path``, let ``write(fh)`` fill it, fsync, rename over."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; give the file the usual umask mode
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory + ``os.replace``.

    A reader (or a process that restarts after a crash, even SIGKILL or power loss) sees the
    old content or the new one, never a truncated file.
    """
    atomic_write_with(Path(path), lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def locked_dir(path: str | os.PathLike[str], shared: bool = False) -> Iterator[Path]:
    """Hold an advisory lock on directory ``path``: exclusive (writers) or ``shared`` (readers).

    The lock is ``flock`` on the directory's own file descriptor, so it leaves no lock file
    behind and is released automatically when the process dies (even by SIGKILL). Every
    thetanet writer of a model or checkpoint directory takes it exclusively (creating the
    directory if missing), so concurrent writers are serialised; loaders take it shared, so
    they never read half of one save and half of the next. Where it cannot be taken (no
    ``fcntl`` on Windows, a file system without locks, a reader's missing directory) the
    body runs unlocked: writes stay atomic per file and loaders retry.
    """
    path = Path(path)
    if not shared:
        path.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield path
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if not shared:
            raise
        yield path
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        except OSError:  # pragma: no cover - file system without flock
            pass
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock


# --------------------------------------------------------------------------------------------
# .npz arrays
# --------------------------------------------------------------------------------------------

def save_arrays(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    """Write plain numeric arrays to an ``.npz`` atomically (object arrays are refused)."""
    for k, a in arrays.items():
        dt = np.asarray(a).dtype
        if dt.hasobject or dt.kind not in _SAFE_KINDS:
            raise TypeError(f"array {k!r} has dtype {dt}; only plain numeric arrays are saved")
        if not _MEMBER_RE.fullmatch(f"{k}.npy"):
            raise ValueError(f"invalid array name {k!r}")
    atomic_write_with(Path(path), lambda fh: np.savez(fh, **arrays))


def _read_npy(zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: Path,
              expect: tuple[tuple[int, ...], str] | None) -> np.ndarray:
    """Parse one ``.npy`` member without numpy's pickle-capable reader."""
    key = info.filename[:-4]
    with zf.open(info) as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(
                    fh, max_header_size=MAX_NPY_HEADER)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(
                    fh, max_header_size=MAX_NPY_HEADER)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except (ValueError, SyntaxError, TypeError, EOFError, OverflowError) as exc:
            raise ModelFileError(f"{source}: array {key!r} has a bad .npy header ({exc})") from exc
        if dtype.hasobject or dtype.kind not in _SAFE_KINDS or dtype.fields is not None:
            raise ModelFileError(f"{source}: array {key!r} holds Python objects (pickled "
                                 f"data) or dtype {dtype}; thetanet never unpickles, refusing "
                                 "to load it")
        if not all(isinstance(d, int) and 0 <= d < 2**40 for d in shape) or len(shape) > 32:
            raise ModelFileError(f"{source}: array {key!r} has an invalid shape {shape!r}")
        count = 1
        for d in shape:
            count *= d
        nbytes = count * dtype.itemsize
        header = fh.tell()
        if header + nbytes != info.file_size:
            raise ModelFileError(f"{source}: array {key!r} is truncated or padded: shape "
                                 f"{shape} needs {nbytes} bytes, the member has "
                                 f"{info.file_size - header}")
        if expect is not None and (tuple(shape) != tuple(expect[0])
                                   or dtype.newbyteorder("=").name != expect[1]):
            raise ModelFileError(f"{source}: array {key!r} has shape {tuple(shape)}/{dtype}, "
                                 f"expected {tuple(expect[0])}/{expect[1]}")
        data = fh.read(nbytes)
        if len(data) != nbytes:
            raise ModelFileError(f"{source}: array {key!r} is truncated")
    arr = np.frombuffer(data, dtype=dtype, count=count)
    arr = arr.reshape(shape, order="F" if fortran else "C")
    return arr.astype(dtype.newbyteorder("="), order="C", copy=True)  # writable, native, 0-d ok


def load_arrays(path: str | os.PathLike[str],
                expected: Mapping[str, tuple[Any, str]] | None = None) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz``; refuse pickles, zip bombs and anything unexpected.

    ``expected`` maps each key to ``(shape, dtype name)``: then the file must hold exactly
    those arrays, and sizes are checked before any data is read. Without it, any number of
    plain numeric arrays is accepted (compressed members up to a sane ratio).
    """
    path = Path(path)
    try:
        archive_size = path.stat().st_size
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_NPZ_MEMBERS:
                raise ModelFileError(f"{path}: {len(infos)} members; at most "
                                     f"{MAX_NPZ_MEMBERS} are accepted")
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise ModelFileError(f"{path}: duplicate member names")
            for info in infos:
                if not _MEMBER_RE.fullmatch(info.filename) or ".." in info.filename:
                    raise ModelFileError(f"{path}: unexpected member {info.filename!r}")
                if info.compress_size > archive_size or (
                        info.compress_type == zipfile.ZIP_STORED
                        and info.file_size != info.compress_size):
                    raise ModelFileError(f"{path}: member {info.filename!r} declares sizes "
                                         "the file cannot hold (corrupt or crafted)")
                if info.compress_type != zipfile.ZIP_STORED and info.file_size > max(
                        1 << 20, MAX_COMPRESSION_RATIO * info.compress_size):
                    raise ModelFileError(f"{path}: member {info.filename!r} would expand "
                                         f"{info.compress_size} → {info.file_size} bytes "
                                         "(zip bomb?)")
            keys = [n[:-4] for n in names]
            if expected is not None:
                missing = sorted(set(expected) - set(keys))
                extra = sorted(set(keys) - set(expected))
                if missing or extra:
                    raise ModelFileError(
                        f"{path}: arrays do not match the config"
                        + (f"; missing {', '.join(missing)}" if missing else "")
                        + (f"; unexpected {', '.join(extra)}" if extra else ""))
            out = {}
            for info, key in zip(infos, keys):
                exp = None if expected is None else expected[key]
                out[key] = _read_npy(zf, info, path, exp)
            return out
    except ModelFileError:
        raise
    except FileNotFoundError as exc:
        raise ModelFileError(f"{path}: weights file not found") from exc
    except IsADirectoryError as exc:
        raise ModelFileError(f"{path}: is a directory, not an .npz file") from exc
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, KeyError,
            NotImplementedError, RuntimeError, OverflowError, MemoryError) as exc:
        raise ModelFileError(f"{path}: not a readable .npz file ({exc})") from exc


def read_json(path: str | os.PathLike[str], what: str = "model config") -> Any:
    """Parse a JSON file of at most :data:`MAX_JSON_BYTES`; problems raise ModelFileError."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise ModelFileError(f"{path}: {size} bytes is too large for a {what}")
        return json.loads(path.read_bytes().decode("utf-8"))
    except ModelFileError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        msg = str(exc) if not isinstance(exc, RecursionError) else "nested too deeply"
        raise ModelFileError(f"{path}: corrupt {what} ({msg})") from exc
    except IsADirectoryError as exc:
        raise ModelFileError(f"{path}: is a directory, not a {what}") from exc
