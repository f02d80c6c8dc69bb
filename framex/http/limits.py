"""A bound on the size of request bodies (``server.max_body_bytes``): 413, never unbounded memory.

A body announced larger than the bound (``Content-Length``) is refused before any of it
is read. A body without a length (``Transfer-Encoding: chunked``) is counted while the
app reads it; once past the bound, reading it raises an ``HTTPException`` (413), which
the error handlers turn into the usual envelope. A body within its announced length
needs no counting: the server never hands the app more than that.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from framex.http.envelope import envelope_response

if TYPE_CHECKING:
    from fastapi import FastAPI

_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"


class BodyTooLargeError(HTTPException):
    """Raised while reading a request body that went past ``server.max_body_bytes``."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body too large: the limit is {limit} bytes (`server.max_body_bytes`).")


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413 (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        chunked = False
        for name, value in scope["headers"]:
            if name == _CONTENT_LENGTH:
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_bytes + 1  # the server rejects such requests before this
                if declared > self.max_bytes:
                    return self._refuse(scope, receive, send)
                return self.app(scope, receive, send)
            if name == _TRANSFER_ENCODING:
                chunked = True
        if not chunked:
            return self.app(scope, receive, send)  # no body
        return self._counted(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = BodyTooLargeError(self.max_bytes)
        response = envelope_response(None, status=413, message=str(error.detail))
        await response(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_bytes
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BodyTooLargeError:
            # Raised where no error handler saw it (a middleware reading the body).
            if started:
                raise
            await self._refuse(scope, receive, send)


def install_body_limit(app: FastAPI, max_bytes: int | None) -> None:
    """Bound request bodies to ``max_bytes``; nothing when it is None.

    Install it first, as the innermost middleware: the error handlers then see the 413
    raised while a route reads the body, and auth and CORS wrap its answers.
    """
    if max_bytes is not None:
        app.add_middleware(BodyLimitMiddleware, max_bytes=max_bytes)
