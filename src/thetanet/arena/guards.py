"""Bounds on what a request may cost, as ASGI middleware around the app: a body of at most
``max_bytes`` (a declared Content-Length over it is refused before reading a byte) that arrives
within ``seconds`` of the first read; and headers that keep pages from being framed, sniffed or
leaking their address."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit", "SECURITY_HEADERS"]

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class BodyLimit:
    """Refuse bodies over ``max_bytes`` (413) or slower than ``seconds`` in all (408)."""

    def __init__(self, app: ASGIApp, max_bytes: int, seconds: float) -> None:
        self.app, self.max_bytes, self.seconds = app, max_bytes, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _refuse(scope, receive, send, 413, self._too_big())
            return
        await self.app(scope, self._bounded(receive), _with_headers(send))

    def _too_big(self) -> str:
        return (f"the upload is larger than the limit of {self.max_bytes:,} bytes; "
                "nothing stored")

    def _bounded(self, receive: Receive) -> Receive:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        seen = 0

        async def bounded() -> Message:
            nonlocal seen
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.001))
            except asyncio.TimeoutError:
                raise HTTPException(408, f"the upload took longer than {self.seconds:g} s; "
                                         "nothing stored") from None
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, self._too_big())
            return message
        return bounded


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _with_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            names = {k.lower() for k, _ in headers}
            for k, v in SECURITY_HEADERS.items():
                if k.lower().encode() not in names:
                    headers.append((k.lower().encode(), v.encode()))
            message = {**message, "headers": headers}
        await send(message)
    return sending


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, text: Any) -> None:
    response = PlainTextResponse(text, status_code=status, headers={"Connection": "close"})
    await response(scope, receive, _with_headers(send))
