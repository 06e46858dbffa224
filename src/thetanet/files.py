"""Crash-safe file primitives used by everything in thetanet that writes or reads files.

- atomic writes (:func:`atomic_write_with`, :func:`atomic_write_bytes`,
  :func:`atomic_write_text`): a temp file next to the target, fsync, one ``os.replace``;
- :func:`locked_dir`: an advisory lock on a directory (writers exclusive, readers shared);
- bounded readers: :func:`save_arrays` / :func:`load_arrays` for ``.npz`` files of plain
  numeric arrays (never pickle: headers checked, sizes bounded, zip bombs refused) and
  :func:`read_json` for JSON documents of bounded size (integers of at most
  :data:`MAX_INT_DIGITS` digits). Both read regular files only (:func:`read_regular`): a FIFO,
  a device (``/dev/zero``) or a directory is refused before anything is read from it;
- :func:`open_output`: a file a *user* named (``--output``): regular or new files are written
  atomically, anything else (FIFO, terminal, device, a symlink such as ``/dev/stdout``) is
  written in place and never replaced.

Every reading problem raises :class:`ModelFileError` naming the offending file; writing errors
name the target, never a temp file. The formats built on these (models, checkpoints) live in
:mod:`thetanet.saving` and :mod:`thetanet.checkpoint`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import stat
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

#: Largest JSON document read (config.json, checkpoint.json, nc.json), in bytes.
MAX_JSON_BYTES = 64 * 2**20
#: Most digits of an integer in a JSON document (thetanet writes at most ~20; Python's own
#: limit, 4300, would end in a bare ValueError and quadratic parsing before it).
MAX_INT_DIGITS = 100
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
    """A file is missing, corrupt, edited, unsafe, out of range or from an unknown format.

    Its checksums detect accidents (damage, truncation, a partial copy), not tampering: an
    edit with a recomputed checksum passes them, so every value is also validated."""


class NoChecksumWarning(UserWarning):
    """A document of an older format without a checksum of its own was read: it is
    validated, but an edit that keeps it well-formed cannot be detected (saving it again
    gives it its checksum)."""


#: The earlier name of :class:`NoChecksumWarning` (kept for code that catches it).
UnsignedFileWarning = NoChecksumWarning


def error_naming(exc: OSError, path: Path) -> OSError:
    """``exc`` again, naming ``path`` (the target) instead of a temp file."""
    if exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror, str(path))  # OSError(errno, …) picks the subclass


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
    """Create a temp file next to ``path``, let ``write(fh)`` fill it, fsync, rename over.

    For files thetanet owns (inside a model or cache directory): whatever ``path`` is, it is
    replaced. A file a user named goes through :func:`open_output` instead. An ``OSError``
    names ``path``, never the temp file.
    """
    path = Path(path)
    with _atomic(path) as fh:
        write(fh)


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[IO[bytes]]:
    """A binary handle on a temp file next to ``path``, renamed over it if the body succeeds."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise error_naming(exc, path) from None
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; give the file the usual umask mode
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise error_naming(exc, path) from None
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def open_output(path: str | os.PathLike[str], binary: bool = False) -> Iterator[IO[Any]]:
    """A handle on the output file a user named (``--output FILE``), text (UTF-8, ``\\n``
    kept) unless ``binary``.

    The rule, for every CLI output path: a regular file — or a new one — is written atomically
    (a temp file beside it, renamed over it when the block ends without error; on an error the
    old file stays). Anything else is written in place, as a shell redirection would, and is
    never replaced: a FIFO, a terminal, a device, or a symlink (``/dev/stdout`` included;
    a symlink to a regular file is truncated and rewritten through the link). A directory or a
    dangling symlink is an error.
    """
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(21, "is a directory, not a file", str(path))
    if st is None or stat.S_ISREG(st.st_mode):
        with _atomic(path) as raw:
            yield from _layer(raw, binary)
        return
    try:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.close(fd)
            raise IsADirectoryError(21, "is a directory, not a file", str(path))
        if stat.S_ISREG(os.fstat(fd).st_mode):  # through a symlink: replace the content
            os.ftruncate(fd, 0)
    except OSError as exc:
        raise error_naming(exc, path) from None
    with os.fdopen(fd, "wb") as raw:
        yield from _layer(raw, binary)


def _layer(raw: IO[bytes], binary: bool) -> Iterator[IO[Any]]:
    """Yield ``raw`` itself, or a UTF-8 text layer on it (flushed and detached afterwards, so
    the owner of ``raw`` alone closes it)."""
    if binary:
        yield raw
        return
    text = io.TextIOWrapper(raw, encoding="utf-8", newline="")  # type: ignore[arg-type]
    try:
        yield text
        text.flush()
    finally:
        with contextlib.suppress(OSError, ValueError):
            text.detach()


def write_output(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write ``data`` to the user-named ``path`` by the rule of :func:`open_output`."""
    with open_output(path, binary=isinstance(data, bytes)) as fh:
        fh.write(data)


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


def lock_is_free(path: str | os.PathLike[str]) -> bool:
    """Whether nobody holds a :func:`locked_dir` lock on directory ``path`` now — proof that a
    writer who held it while working there has died. ``False`` where that cannot be known
    (no ``fcntl``, no ``flock``, not a directory)."""
    if fcntl is None:  # pragma: no cover
        return False
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held by a live process (or no flock here)
        return False
    else:
        return True
    finally:
        os.close(fd)


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
    with open_regular(path, "weights file", 2**62) as (fd, archive_size):
        return _load_arrays(path, os.fdopen(os.dup(fd), "rb"), archive_size, expected)


def _load_arrays(path: Path, fh: IO[bytes], archive_size: int,
                 expected: Mapping[str, tuple[Any, str]] | None) -> dict[str, np.ndarray]:
    try:
        with fh, zipfile.ZipFile(fh) as zf:
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
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, KeyError,
            NotImplementedError, RuntimeError, OverflowError, MemoryError) as exc:
        raise ModelFileError(f"{path}: not a readable .npz file ({exc})") from exc


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


@contextlib.contextmanager
def open_regular(path: str | os.PathLike[str], what: str, max_bytes: int
                 ) -> Iterator[tuple[int, int]]:
    """``(fd, size)`` of the regular file ``path`` (symlinks followed), opened for reading.

    Anything else is refused before it is opened (a FIFO without a writer would block forever,
    ``/dev/zero`` never ends), and checked again on the opened descriptor; so is a file larger
    than ``max_bytes``. Problems raise :class:`ModelFileError` naming ``path``.
    """
    path = Path(path)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ModelFileError(f"{path}: is {_kind(st.st_mode)}, not a {what} file")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise ModelFileError(f"{path}: {what} not found") from exc
    except NotADirectoryError as exc:
        raise ModelFileError(f"{path}: {what} not found (a parent is not a directory)") from exc
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot open the {what} ({exc.strerror})") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped between the two checks
            raise ModelFileError(f"{path}: is {_kind(st.st_mode)}, not a {what} file")
        if st.st_size > max_bytes:
            raise ModelFileError(f"{path}: {st.st_size} bytes is too large for a {what} "
                                 f"(at most {max_bytes})")
        yield fd, st.st_size
    finally:
        os.close(fd)


def read_regular(path: str | os.PathLike[str], what: str, max_bytes: int) -> bytes:
    """The content of the regular file ``path``, at most ``max_bytes`` (see
    :func:`open_regular`; a file that grows past the bound while read is refused too)."""
    with open_regular(path, what, max_bytes) as (fd, _):
        chunks, total = [], 0
        try:
            while chunk := os.read(fd, 1 << 20):
                total += len(chunk)
                if total > max_bytes:
                    raise ModelFileError(f"{path}: larger than {max_bytes} bytes, too large "
                                         f"for a {what}")
                chunks.append(chunk)
        except OSError as exc:
            raise ModelFileError(f"{path}: cannot read the {what} ({exc.strerror})") from exc
    return b"".join(chunks)


class _TooManyDigits(ValueError):
    pass


def _parse_int(text: str) -> int:
    """``json``'s ``parse_int``: refuse integers longer than :data:`MAX_INT_DIGITS` digits
    before converting them (``int()`` of a long string is quadratic)."""
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _TooManyDigits(f"an integer of {len(text.lstrip('-'))} digits (at most "
                             f"{MAX_INT_DIGITS})")
    return int(text)


def read_json(path: str | os.PathLike[str], what: str = "model config",
              max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse the JSON regular file ``path`` of at most ``max_bytes``; problems (missing, not a
    regular file, too large, not UTF-8, not JSON, nested too deeply, integers of more than
    :data:`MAX_INT_DIGITS` digits) raise :class:`ModelFileError` naming the file."""
    path = Path(path)
    data = read_regular(path, what, max_bytes)
    try:
        return json.loads(data.decode("utf-8"), parse_int=_parse_int)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError, _TooManyDigits and int()'s own digit limit
        msg = str(exc) if not isinstance(exc, RecursionError) else "nested too deeply"
        raise ModelFileError(f"{path}: corrupt {what} ({msg:.200})") from exc
