"""Checking an IDX download while it streams in: header and size, before it is all here.

A mirror could serve a small gzip that inflates to gigabytes, or a file of the wrong kind;
:class:`IdxStreamCheck` inflates each block as it arrives (gzip recognised by content, as
:mod:`thetanet.data.idx` does) and raises :class:`~thetanet.data.idx.IdxFormatError` as soon
as the first bytes differ from the expected header or the content grows past the expected
size — so at most that size is ever inflated, and a wrong file stops after its first block.
"""

from __future__ import annotations

import zlib

__all__ = ["IdxStreamCheck", "mnist_header"]

_GZIP_MAGIC = b"\x1f\x8b"


def mnist_header(images: bool, count: int) -> bytes:
    """The IDX header of an MNIST file: magic 0x00000803 + n, 28, 28 (images) or
    magic 0x00000801 + n (labels)."""
    if images:
        return b"".join(v.to_bytes(4, "big") for v in (0x803, count, 28, 28))
    return b"".join(v.to_bytes(4, "big") for v in (0x801, count))


class IdxStreamCheck:
    """A download's ``watch``: the content must start with ``header`` and hold exactly
    ``size`` bytes once inflated (the size is checked here as an upper bound; the whole file
    is verified again when complete). Problems raise ``error`` (``IdxFormatError`` from
    :mod:`thetanet.data.idx`) naming ``source``."""

    def __init__(self, source: str, header: bytes, size: int,
                 error: type[ValueError] = ValueError) -> None:
        self.source, self.header, self.size, self.error = source, header, size, error
        self.inflated = 0
        self.head = b""
        self.gzip: bool | None = None  # decided by the first two bytes
        self.start = b""
        self.inflater: zlib._Decompress | None = None

    def __call__(self, block: bytes) -> None:
        if self.gzip is None:
            self.start += block
            if len(self.start) < 2:
                return
            self.gzip = self.start[:2] == _GZIP_MAGIC
            block, self.start = self.start, b""
        self._content(self._inflate(block) if self.gzip else block)

    def _inflate(self, block: bytes) -> bytes:
        out = []
        while block:
            if self.inflater is None:
                block = block.lstrip(b"\0")  # padding between gzip members
                if not block:
                    break
                self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:  # never more than one byte beyond the expected size
                out.append(self.inflater.decompress(block, self.size - self.inflated + 1))
            except zlib.error as exc:
                self._fail(f"corrupt gzip data ({exc})")
            self.inflated += len(out[-1])
            if self.inflated > self.size:
                self._fail(f"inflates to more than the expected {self.size} bytes; refusing")
            block = self.inflater.unused_data
            if self.inflater.eof:
                self.inflater = None
            else:
                break
        return b"".join(out)

    def _content(self, data: bytes) -> None:
        if not self.gzip:
            self.inflated += len(data)
            if self.inflated > self.size:
                self._fail(f"more than the expected {self.size} bytes; refusing")
        if len(self.head) < len(self.header):
            self.head += data[: len(self.header) - len(self.head)]
            if not self.header.startswith(self.head):
                self._fail(f"IDX header {self.head.hex()} differs from the expected "
                           f"{self.header.hex()} (not this MNIST file)")

    def _fail(self, why: str) -> None:
        raise self.error(f"{self.source}: {why}")
