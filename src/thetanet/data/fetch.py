"""Downloading data files: one fetcher with progress, checksum verification, atomic placement.

:func:`download` streams a URL into a temp file in the destination folder, verifies it (sha256
and/or a content check), and only then renames it into place, so an interrupted or corrupt
download never leaves a half-written file under the target name. Progress goes to stderr: a
live bar (tqdm) on a terminal, plain lines otherwise.

Failures to get the bytes (offline, DNS failure, connection refused or reset, timeout, an HTTP
error, a connection closed mid-body) raise :class:`FetchError`, a ``ConnectionError`` whose
message is one line; bytes that arrive but are wrong raise :class:`ChecksumError` (or whatever
the content check raises).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["ChecksumError", "FetchError", "download", "remove_stale_temps", "sha256_file"]

#: Largest download accepted (the biggest file fetched, MNIST's training images, is ~10 MB).
MAX_BYTES = 256 * 2**20
#: Longest one file may take, in seconds, however steadily its bytes trickle in (a server
#: sending one byte a second never trips the socket timeout).
DEADLINE = 900.0
_CHUNK = 1 << 16
#: Seconds between plain progress lines while bytes arrive (so a slow small file shows life).
_PROGRESS_EVERY = 10.0


class FetchError(ConnectionError):
    """A file could not be downloaded; ``str(exc)`` is one line naming the URL and why."""

    def __init__(self, url: str, reason: str, hint: str = "") -> None:
        self.url, self.reason, self.hint = url, reason, hint
        text = f"could not download {url}: {reason}" + (f"; {hint}" if hint else "")
        super().__init__(" ".join(text.split()))  # one line, whatever the reason held

    def with_hint(self, hint: str) -> FetchError:
        """The same failure with advice (the command to run, the folder to fill) appended."""
        return FetchError(self.url, self.reason, hint)


class ChecksumError(ValueError):
    """Downloaded bytes whose sha256 differs from the published one (nothing was written)."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _reason(exc: BaseException) -> str:
    """A short human reason for a network failure (no traceback, one line)."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"the server answered HTTP {exc.code} {exc.reason}"
    inner = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(inner, socket.gaierror):
        return "host not found (offline, or a DNS failure)"
    if isinstance(inner, ConnectionRefusedError):
        return "connection refused (offline, or the server is down)"
    if isinstance(inner, (TimeoutError, socket.timeout)):
        return "timed out (offline, or the server is slow)"
    if isinstance(inner, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(inner, http.client.IncompleteRead):
        return f"connection closed mid-download ({len(inner.partial)} bytes received)"
    if isinstance(inner, OSError) and inner.strerror:
        return inner.strerror
    return str(inner) or type(inner).__name__


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover - the loop returns


class _Progress:
    """A tqdm bar on a terminal, else plain lines: start, each further quarter, done."""

    def __init__(self, url: str, target: Path, enabled: bool, stream: IO[str] | None) -> None:
        self.url, self.target, self.enabled = url, target, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.bar: Any = None
        self.total: int | None = None
        self.done = 0
        self.quarter = 0
        self.started = False
        self.t0 = time.monotonic()
        self.last_line = self.t0  # see _slow_progress_line

    def start(self, total: int | None) -> None:
        self.total = total
        self.started = True
        if not self.enabled:
            return
        size = f" ({_human(total)})" if total else ""
        print(f"fetching {self.url}{size} -> {self.target}", file=self.stream, flush=True)
        isatty = getattr(self.stream, "isatty", None)
        if isatty is not None and isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1000,
                            desc=self.target.name, file=self.stream, leave=False)

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
        elif self.total and self.total >= 1 << 20:  # plain lines only for larger files
            q = 4 * self.done // self.total
            if 0 < q < 4 and q > self.quarter:
                self.quarter = q
                print(f"  {25 * q}% ({_human(self.done)} of {_human(self.total)})",
                      file=self.stream, flush=True)
        else:
            _slow_progress_line(self)

    def finish(self, outcome: str) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.enabled and self.started:  # a refused connection printed nothing yet
            secs = time.monotonic() - self.t0
            print(f"  {outcome}: {_human(self.done)} in {secs:.1f} s", file=self.stream,
                  flush=True)


def _slow_progress_line(report: _Progress) -> None:
    """A plain line every :data:`_PROGRESS_EVERY` seconds for a download too small for
    quarter lines (or of unknown size): a slow server still shows that bytes arrive."""
    now = time.monotonic()
    if now - report.last_line >= _PROGRESS_EVERY:
        report.last_line = now
        of = f" of {_human(report.total)}" if report.total else ""
        print(f"  {_human(report.done)}{of} after {now - report.t0:.0f} s",
              file=report.stream, flush=True)


def _temp_name(target: Path) -> re.Pattern[str]:
    """The names of the temp files a download of ``target`` writes (``.NAME.XXXXXXXX.tmp``,
    see :func:`thetanet.files.atomic_write_with`)."""
    return re.compile(re.escape(f".{target.name}.") + r"[A-Za-z0-9_]{8}\.tmp")


def remove_stale_temps(target: Path) -> list[Path]:
    """Remove the temp files that killed downloads of ``target`` left beside it; return them.

    Call only while holding :func:`thetanet.files.locked_dir` on ``target.parent``: every
    download holds it while it writes, so a temp file found then belongs to a dead one."""
    pattern = _temp_name(target)
    gone = []
    for p in target.parent.glob(f".{target.name}.*.tmp"):
        if pattern.fullmatch(p.name) and p.is_file() and not p.is_symlink():
            try:
                p.unlink()
            except FileNotFoundError:
                continue
            gone.append(p)
    return gone


def _read_block(resp: Any, url: str, t_end: float, deadline: float, done: int) -> bytes:
    """The next bytes of ``resp`` as soon as some arrive (``read1``), or a
    :class:`FetchError` when the file's deadline has passed."""
    if time.monotonic() > t_end:
        raise FetchError(url, f"still downloading after {deadline:g} s ({done} bytes "
                              "received); the server is too slow")
    read = getattr(resp, "read1", None) or resp.read
    try:
        return read(_CHUNK)
    except (OSError, http.client.HTTPException) as exc:
        raise FetchError(url, _reason(exc)) from None


def _open(url: str, timeout: float) -> Any:
    req = urllib.request.Request(url, headers={"User-Agent": "thetanet"})
    try:
        return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - http(s)/file URLs
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise FetchError(url, _reason(exc)) from None


def download(
    url: str,
    target: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    check: Callable[[bytes], bytes | None] | None = None,
    progress: bool = True,
    stream: IO[str] | None = None,
    timeout: float = 60.0,
    max_bytes: int = MAX_BYTES,
    deadline: float = DEADLINE,
    watch: Callable[[bytes], None] | None = None,
) -> Path:
    """Download ``url`` to ``target``, verified, atomically; return ``target``.

    The bytes stream into a temp file beside ``target``. When the body is complete (as long as
    the server's ``Content-Length`` says), its sha256 must equal ``sha256`` (if given) and
    ``check(data)`` (if given) must not raise; ``check`` may return other bytes to store
    instead (e.g. the same content recompressed). Only then is the temp file renamed to
    ``target``. On any failure the temp file is removed and ``target`` is left as it was.
    ``progress``: report to ``stream`` (default stderr), a tqdm bar when it is a terminal.
    ``deadline``: most seconds for the whole file. ``watch(block)`` sees each block as it
    arrives and may raise to stop at once (e.g. a header that is wrong, a size beyond the
    expected one). Temp files of earlier, killed downloads of ``target`` are removed first.
    """
    from thetanet.files import atomic_write_with, locked_dir

    target = Path(target)
    report = _Progress(url, target, progress, stream)
    resp = _open(url, timeout)  # first: offline, nothing is created, not even the folder

    def fill(fh: IO[bytes]) -> None:
        data, got = _stream_body(resp, url, fh, report, deadline=deadline,
                                 max_bytes=max_bytes, watch=watch)
        if sha256 is not None and got != sha256:
            raise ChecksumError(f"checksum mismatch for {url}: sha256 {got}, expected "
                                f"{sha256}; nothing was written")
        if check is not None:
            replacement = check(bytes(data))
            if replacement is not None:
                fh.seek(0)
                fh.truncate()
                fh.write(replacement)

    try:
        with resp:
            target.parent.mkdir(parents=True, exist_ok=True)
            with locked_dir(target.parent):  # one download here at a time: see below
                remove_stale_temps(target)
                atomic_write_with(target, fill)
    except BaseException as exc:
        report.finish("failed" if not isinstance(exc, KeyboardInterrupt) else "interrupted")
        raise
    report.finish(f"saved {target.name}" + (" (sha256 verified)" if sha256 else ""))
    return target


def _stream_body(resp: Any, url: str, fh: IO[bytes], report: _Progress, *, deadline: float,
                 max_bytes: int, watch: Callable[[bytes], None] | None
                 ) -> tuple[bytearray, str]:
    """Copy the response body into ``fh`` (bounded in bytes and time, every block shown to
    ``watch``); return the body and its sha256, after checking it is as long as announced."""
    h = hashlib.sha256()
    data = bytearray()
    length = resp.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() else None
    report.start(total)
    t_end = time.monotonic() + deadline
    while True:
        block = _read_block(resp, url, t_end, deadline, len(data))
        if not block:
            break
        if watch is not None:
            watch(block)
        fh.write(block)
        h.update(block)
        data += block
        report.update(len(block))
        if len(data) > max_bytes:
            raise FetchError(url, f"more than {max_bytes} bytes; refusing")
    if total is not None and len(data) != total:
        raise FetchError(url, f"connection closed after {len(data)} of {total} bytes")
    return data, h.hexdigest()
