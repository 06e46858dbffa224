"""Safe model files: JSON architecture + ``.npz`` weights, never pickle.

A saved model is a directory::

    model/
      config.json          format + version, thetanet version, architecture, compile settings,
                           metadata, and the name, shape, dtype and SHA-256 of every weight array
      weights-<hash>.npz   the arrays (plain numeric ``.npy`` members, uncompressed)

Writes are atomic and crash-safe: the new weights file gets a fresh name, then ``config.json``
is replaced in one ``os.replace``; old weight files are removed only afterwards. A reader sees
either the old model or the new one, never a mix. Writers to the same directory are serialised
by an advisory lock (``flock`` on the directory itself, where the platform has it), so two
processes saving to one place cannot delete each other's weights.

Loading never executes code: ``.npz`` members are parsed here (header checked, then raw bytes
copied into a fresh array), object/structured dtypes are refused, sizes are checked against
the config before anything is allocated, and every array's checksum is verified. Every problem
raises :class:`ModelFileError` naming the offending file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "thetanet-model"
#: 1: weights checksummed; 2: also the document itself (``sha256``). Both are read.
FORMAT_VERSION = 2
CONFIG_NAME = "config.json"

#: Largest JSON document read (config.json, checkpoint.json), in bytes.
MAX_JSON_BYTES = 64 * 2**20
#: Most members accepted in one ``.npz``.
MAX_NPZ_MEMBERS = 10_000
#: Largest ``.npy`` header accepted (numpy's own default limit).
MAX_NPY_HEADER = 10_000
#: A deflated member may expand at most this much (thetanet writes uncompressed members).
MAX_COMPRESSION_RATIO = 200
_MEMBER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,200}\.npy")
_WEIGHTS_FILE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,200}\.npz")
_SAFE_KINDS = "biuf"

try:  # POSIX advisory locks; elsewhere writers are not serialised (still atomic per file)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class ModelFileError(ValueError):
    """A model file is missing, corrupt, tampered with, unsafe or from an unknown format."""


def _sha256(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def doc_digest(doc: Mapping[str, Any]) -> str:
    """SHA-256 of a JSON document's canonical form, without its own ``sha256`` entry."""
    body = {k: v for k, v in doc.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


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


def write_bundle(directory: Path, json_name: str, doc: dict[str, Any],
                 arrays: Mapping[str, np.ndarray], prefix: str, *,
                 file_key: str = "arrays_file", specs_key: str = "arrays",
                 names: list[str] | None = None) -> str:
    """Atomically publish ``arrays`` + ``doc`` in ``directory`` (the caller holds its lock).

    The arrays go to ``<prefix>-<content hash>.npz``; ``doc`` gains ``file_key`` (that name),
    ``specs_key`` (key, shape, dtype, SHA-256 and optional ``names`` of each array) and
    ``sha256`` (:func:`doc_digest`, so an edited or corrupted document is refused too) and
    replaces ``json_name`` in one rename; older ``<prefix>-*.npz`` files (and temp files left
    by a writer that was killed: the lock says none is running) are removed only afterwards.
    Returns the arrays file name.
    """
    specs: list[dict[str, Any]] = [
        {"key": k, "shape": list(a.shape), "dtype": a.dtype.name, "sha256": _sha256(a)}
        for k, a in arrays.items()]
    if names is not None:
        for spec, name in zip(specs, names):
            spec["name"] = name
    digest = hashlib.sha256("".join(s["key"] + s["sha256"] for s in specs).encode()
                            ).hexdigest()[:16]
    fname = f"{prefix}-{digest}.npz"
    save_arrays(directory / fname, arrays)
    doc = json.loads(json.dumps({**doc, file_key: fname, specs_key: specs}))  # as read back
    doc["sha256"] = doc_digest(doc)
    atomic_write_text(directory / json_name, json.dumps(doc, indent=1, sort_keys=True))
    stale = [*directory.glob(f"{prefix}-*.npz"), *directory.glob(f".{prefix}-*.npz.*.tmp"),
             *directory.glob(f".{json_name}.*.tmp")]  # temp files of writers killed mid-way
    for old in stale:
        if old.name != fname:
            try:
                old.unlink()
            except FileNotFoundError:
                pass
    return fname


def read_bundle_arrays(directory: Path, json_path: Path, doc: dict[str, Any],
                       file_key: str = "arrays_file", specs_key: str = "arrays"
                       ) -> dict[str, np.ndarray]:
    """Load and verify the arrays a bundle document lists (shapes, dtypes, SHA-256)."""
    fname = doc.get(file_key)
    if not isinstance(fname, str) or not _WEIGHTS_FILE_RE.fullmatch(fname) or ".." in fname:
        raise ModelFileError(f"{json_path}: invalid {file_key} {fname!r}")
    specs = doc.get(specs_key)
    if not isinstance(specs, list):
        raise ModelFileError(f"{json_path}: {specs_key!r} must be a list")
    expected: dict[str, tuple[tuple[int, ...], str]] = {}
    for spec in specs:
        ok = (isinstance(spec, dict) and isinstance(spec.get("key"), str)
              and isinstance(spec.get("shape"), list)
              and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40
                      for d in spec["shape"])
              and isinstance(spec.get("dtype"), str) and isinstance(spec.get("sha256"), str))
        if not ok:
            raise ModelFileError(f"{json_path}: malformed array entry {spec!r:.200}")
        if spec["key"] in expected:
            raise ModelFileError(f"{json_path}: array {spec['key']!r} listed twice")
        expected[spec["key"]] = (tuple(spec["shape"]), spec["dtype"])
    arrays = load_arrays(directory / fname, expected)
    for spec in specs:
        if _sha256(arrays[spec["key"]]) != spec["sha256"]:
            label = spec.get("name") or spec["key"]
            raise ModelFileError(f"{directory / fname}: checksum mismatch for {label}: the "
                                 "file is corrupt or was modified")
    return arrays


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

def save_model(model: Any, path: str | os.PathLike[str],
               metadata: dict[str, Any] | None = None) -> Path:
    """Save ``model`` (a built Sequential) into the directory ``path``, atomically.

    Concurrent saves to one directory are serialised (see :func:`locked_dir`); the last one
    wins, whole.
    """
    from thetanet import __version__

    model._require_built()
    path = Path(path)
    weights = model.get_weights()
    names = model.weight_names()
    arrays = {f"w{i:03d}": w for i, w in enumerate(weights)}
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "thetanet_version": __version__,
        "model": model.get_config(),
        "compile": model.get_compile_config(),
        "metadata": metadata or {},
    }
    json.dumps(config)  # fail early (before touching the directory) on unserialisable metadata
    with locked_dir(path):
        write_bundle(path, CONFIG_NAME, config, arrays, "weights", file_key="weights_file",
                     specs_key="weights", names=names)
    return path


def check_header(doc: Any, source: Path, fmt: str, version: int, what: str,
                 digest_since: int = 1) -> dict[str, Any]:
    """Validate ``format``/``format_version`` of a parsed JSON document and its checksum.

    The document checksum is required from format ``digest_since`` on, checked when present.
    """
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise ModelFileError(f"{source}: not a thetanet {what}")
    v = doc.get("format_version")
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ModelFileError(f"{source}: invalid format_version {v!r}")
    if v > version:
        raise ModelFileError(f"{source}: written in {what} format {v} by thetanet "
                             f"{doc.get('thetanet_version')}; this thetanet reads format "
                             f"{version} — upgrade thetanet")
    if "sha256" in doc or v >= digest_since:
        if doc.get("sha256") != doc_digest(doc):
            raise ModelFileError(f"{source}: checksum mismatch for the {what} document: the "
                                 "file is corrupt or was edited")
    return doc


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed and validated ``config.json`` of a saved model directory."""
    path = Path(path)
    cfile = path / CONFIG_NAME if path.is_dir() else path
    if not cfile.exists():
        raise ModelFileError(f"{cfile}: no saved model here (missing {CONFIG_NAME})")
    return check_header(read_json(cfile), cfile, FORMAT, FORMAT_VERSION, "model",
                        digest_since=2)


_SIZE_KEYS = ("units", "pieces", "hinges", "input_dim")


def _sizes_in(cfg: dict[str, Any]) -> Iterator[Any]:
    """The size-like entries of a layer config and of its activation's config."""
    for c in (cfg, cfg.get("activation")):
        if isinstance(c, dict):
            for k in _SIZE_KEYS:
                v = c.get(k)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    yield v


def check_model_config(model_cfg: Any, n_elements: int, source: Path) -> None:
    """Refuse configs that cannot match the stored weights before building (allocating) them.

    Every size in the layer configs (units, pieces, input_dim) is bounded by the number of
    stored weight elements, so a tampered config cannot make the loader allocate gigabytes.
    """
    if not isinstance(model_cfg, dict) or not isinstance(model_cfg.get("layers"), list):
        raise ModelFileError(f"{source}: malformed model config")
    layers = model_cfg["layers"]
    if not layers or not all(isinstance(c, dict) and isinstance(c.get("class_name"), str)
                             and isinstance(c.get("config"), dict) for c in layers):
        raise ModelFileError(f"{source}: malformed layer list")
    limit = max(n_elements, 1)
    if n_elements:
        sizes = [v for c in layers for v in _sizes_in(c["config"])]
        top = model_cfg.get("input_dim")
        if isinstance(top, (int, float)) and not isinstance(top, bool):
            sizes.append(top)
        if any(not abs(v) <= limit for v in sizes):
            raise ModelFileError(f"{source}: layer sizes in the config do not fit the "
                                 f"{n_elements} stored weight values")


def load_model(path: str | os.PathLike[str], compile: bool = True) -> Any:
    """Load a model saved by :func:`save_model`, verifying every weight's checksum.

    Never executes code from the files. A concurrent save to the same directory is tolerated
    (the read is retried against the new config).
    """
    path = Path(path)
    if not path.is_dir():
        raise ModelFileError(f"{path}: a saved model is a directory with {CONFIG_NAME}")
    for attempt in range(3):
        with locked_dir(path, shared=True):
            config = read_config(path)
            try:
                arrays = read_bundle_arrays(path, path / CONFIG_NAME, config, "weights_file",
                                            "weights")
                break
            except ModelFileError:
                # Unlocked platforms: a writer may have replaced config.json and removed the
                # old weights meanwhile; read again if so.
                if attempt == 2 or read_config(path).get("weights_file") == config.get(
                        "weights_file"):
                    raise
    specs = config["weights"]
    weights = [arrays[s["key"]] for s in specs]
    check_model_config(config.get("model"), sum(w.size for w in weights), path / CONFIG_NAME)
    return _rebuild(config, weights, path / CONFIG_NAME, compile)


def _rebuild(config: dict[str, Any], weights: list[np.ndarray], source: Path,
             compile: bool) -> Any:
    """Sequential from a validated config + verified weights; errors become ModelFileError."""
    from thetanet.model import Sequential

    try:
        model = Sequential.from_config(config["model"])
        if not model.built:
            raise ValueError("the config has no input_dim")
        model.set_weights(weights)
        if compile and config.get("compile"):
            c = config["compile"]
            model.compile(optimizer=c["optimizer"], loss=c["loss"], metrics=c.get("metrics"))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError,
            MemoryError, RecursionError) as exc:
        raise ModelFileError(f"{source}: cannot rebuild the model "
                             f"({type(exc).__name__}: {exc})") from exc
    meta = config.get("metadata", {})
    model.metadata = meta if isinstance(meta, dict) else {}
    return model
