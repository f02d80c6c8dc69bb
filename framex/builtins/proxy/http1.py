"""A small HTTP/1.1 client with a keep-alive pool, for forwarding at little cost per request.

One :class:`Pool` per upstream and event loop. A request borrows an idle connection (or
opens one), writes the request in one piece (a streamed body in chunked encoding), and
reads the answer with :class:`~framex.builtins.proxy.parser.ResponseParser`: the head first, then the body in one piece
or chunk by chunk. Header names and values stay bytes from end to end.

The upstream is not trusted. An answer ends where its framing says; a byte after it, or
a byte while no request is outstanding, means the two sides no longer agree where
messages start, so that connection is closed and never reused. Interim ``1xx`` answers
are read past (``101`` is refused: nothing here asks to switch protocols), the header
block is capped, and an answer that breaks the grammar is an :class:`UpstreamProtocolError`.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator

from framex.builtins.proxy.parser import (
    MAX_HEADER_BYTES,
    ResponseParser,
    UpstreamClosedError,
    UpstreamProtocolError,
)

__all__ = [
    "HIGH_WATER",
    "IDEMPOTENT",
    "IDLE_SECONDS",
    "MAX_HEADER_BYTES",
    "Pool",
    "Response",
    "ResponseParser",
    "UpstreamClosedError",
    "UpstreamProtocolError",
    "host_header",
]

IDLE_SECONDS = 4.0
"""Idle connections older than this are closed, not reused: servers close theirs after a
few seconds (uvicorn: 5), and a request sent as the server closes would be lost."""
HIGH_WATER = 1 << 20
"""Body bytes buffered unread before the connection stops reading (a slow consumer)."""
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
"""Methods that may be sent again when a reused connection turns out closed (RFC 9110 9.2.2)."""


class _Connection(asyncio.Protocol):
    """One connection: one request at a time, read by the current response's parser."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.response: Response | None = None
        self.lost = False
        self.idle_since = 0.0
        self._writable: asyncio.Future[None] | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are no asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:
            # Nobody asked: whatever this is, it would be read as the next caller's answer.
            self.close()
            return
        parser = response.parser
        try:
            parser.feed(data)
        except UpstreamProtocolError as exc:
            response.fail(exc)
            self.close()
            return
        if parser.trailing:
            self.close()  # the answer stands; the connection does not
        if parser.body:
            response.buffered += len(data)
            if response.buffered > HIGH_WATER and self.transport is not None and not self.lost:
                self.transport.pause_reading()
        response.wake()

    def eof_received(self) -> bool | None:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        response = self.response
        if response is not None and not response.parser.complete:
            try:
                response.parser.feed_eof()
            except UpstreamClosedError as closed:
                response.fail(closed)
            response.wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(UpstreamClosedError(False))

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # --

    async def drain(self) -> None:
        if self._writable is not None:
            await self._writable

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()


class Response:
    """The answer to one request: ``status`` and ``headers`` (bytes pairs, names as sent),
    then the body through :meth:`read` or :meth:`iter_chunks`. :meth:`release` (or the
    ``async with`` block) returns the connection to the pool or closes it."""

    def __init__(self, pool: Pool, connection: _Connection, method: str) -> None:
        self._pool = pool
        self._connection = connection
        self._timeout = pool.timeout
        self._waiter: asyncio.Future[None] | None = None
        self.parser = ResponseParser(method, pool.max_header_bytes)
        self.buffered = 0
        self.error: BaseException | None = None
        self._released = False

    @property
    def status(self) -> int:
        return self.parser.status

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return self.parser.headers

    @property
    def content_length(self) -> int | None:
        return self.parser.content_length

    @property
    def content_type(self) -> str:
        """The media type, lower case, without parameters."""
        return self.parser.content_type

    @property
    def complete(self) -> bool:
        return self.parser.complete

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
            self.wake()

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, deadline: float | None = None) -> None:
        """Until the parser reports something, or the upstream stays silent ``timeout``
        seconds (or ``deadline``, a loop time, passes)."""
        if self.error is not None:
            raise self.error
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        delay = self._timeout if deadline is None else deadline - loop.time()
        timer = loop.call_later(delay, waiter.cancel)
        try:
            await waiter
        except asyncio.CancelledError:
            if not waiter.cancelled() or asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise
            if deadline is None:
                raise TimeoutError(f"no data from the upstream for {self._timeout:g} s") from None
            raise TimeoutError(f"no whole answer head from the upstream within {self._timeout:g} s") from None
        finally:
            timer.cancel()
            self._waiter = None
        if self.error is not None:
            raise self.error

    async def _head(self) -> None:
        # The whole head within `timeout`: an upstream dripping it a byte at a time
        # does not hold the caller longer than a silent one.
        deadline = asyncio.get_running_loop().time() + self._timeout
        while not self.parser.head_done:
            await self._wait(deadline)

    def _take(self) -> bytes:
        body = self.parser.body
        data = body.popleft() if len(body) == 1 else b"".join(body)
        body.clear()
        self.buffered = 0
        transport = self._connection.transport
        if transport is not None and not self.parser.complete and not self._connection.lost:
            transport.resume_reading()
        return data

    async def read(self) -> bytes:
        """The whole body."""
        parts = []
        while True:
            if self.parser.body:
                parts.append(self._take())
            if self.parser.complete:
                return parts[0] if len(parts) == 1 else b"".join(parts)
            await self._wait()

    async def wait_body(self) -> None:
        """Until the first body bytes or the end of the answer are in."""
        while not self.parser.body and not self.parser.complete:
            await self._wait()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives."""
        while True:
            if self.parser.body:
                yield self._take()
            if self.parser.complete:
                return
            await self._wait()

    def release(self) -> None:
        """Back to the pool when the answer was read whole and both sides keep the
        connection; closed otherwise."""
        if self._released:
            return
        self._released = True
        parser = self.parser
        reusable = parser.complete and parser.keep_alive and not parser.trailing and self.error is None
        self._pool._give_back(self._connection, reusable)

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


def host_header(host: str, port: int) -> bytes:
    """``Host`` for ``host``:``port``; an IPv6 address in brackets (RFC 3986 3.2.2)."""
    return (f"[{host}]:{port}" if ":" in host else f"{host}:{port}").encode("idna" if not host.isascii() else "ascii")


_TARGET = re.compile(rb"/[\x21-\x7e]*")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class Pool:
    """Keep-alive connections to one ``host:port`` (TLS with ``tls``), at most ``limit`` at once."""

    def __init__(
        self,
        host: str,
        port: int,
        limit: int,
        connect_timeout: float,
        timeout: float,
        tls: ssl.SSLContext | None = None,
        max_header_bytes: int = MAX_HEADER_BYTES,
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.host_header = host_header(host, port)
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.max_header_bytes = max_header_bytes
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(limit)
        self._closed = False

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout):
            _, connection = await loop.create_connection(
                _Connection, self.host, self.port, ssl=self.tls, server_hostname=self.host if self.tls else None
            )
        return connection

    def _idle_connection(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if not connection.lost and now - connection.idle_since < IDLE_SECONDS:
                return connection
            connection.close()
        return None

    def _give_back(self, connection: _Connection, reusable: bool) -> None:
        connection.response = None
        if reusable and not connection.lost and not self._closed:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
        self._slots.release()

    async def request(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | AsyncIterable[bytes] = b"",
    ) -> Response:
        """Send a request (``target``: path and query, already encoded) and return once
        the answer's head is in. Release the response when done with it.

        Raises ``ValueError`` for a method or target that cannot go on a request line,
        before anything is sent.
        """
        if _TOKEN.fullmatch(method.encode("latin-1", "replace")) is None:
            raise ValueError(f"method {method!r} is not an HTTP token")
        if _TARGET.fullmatch(target) is None:
            raise ValueError(f"request target {target[:80]!r} must be an encoded path (visible ASCII from `/`)")
        # A reused connection the server closed just now loses the request before any
        # answer: an idempotent request with its body at hand is sent again on a new one.
        # Another may have been processed by the upstream already: its error stands.
        replayable = method in IDEMPOTENT and isinstance(body, bytes)
        await self._slots.acquire()
        try:
            for attempt in range(2):
                connection = self._idle_connection() if attempt == 0 else None
                reused = connection is not None
                if connection is None:
                    connection = await self._connect()
                response = Response(self, connection, method)
                connection.response = response
                try:
                    await self._send(connection, method, target, headers, body)
                    await response._head()
                    return response
                except UpstreamClosedError as exc:
                    connection.close()
                    connection.response = None
                    if not (reused and replayable and not exc.got_response):
                        raise
                except BaseException:
                    connection.close()
                    connection.response = None
                    raise
            raise AssertionError("unreachable")
        except BaseException:
            self._slots.release()
            raise

    async def _send(
        self,
        connection: _Connection,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | AsyncIterable[bytes],
    ) -> None:
        transport = connection.transport
        if transport is None or connection.lost:
            raise UpstreamClosedError(False)
        head = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\nhost: ", self.host_header, b"\r\n"]
        for name, value in headers:
            head += [name, b": ", value, b"\r\n"]
        if isinstance(body, bytes):
            if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
                head += [b"content-length: ", str(len(body)).encode(), b"\r\n"]
            head += [b"\r\n", body]
            transport.write(b"".join(head))
            return
        head.append(b"transfer-encoding: chunked\r\n\r\n")
        transport.write(b"".join(head))
        async for chunk in body:
            if chunk:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                await connection.drain()
            if connection.lost:
                response = connection.response
                raise UpstreamClosedError(response is not None and response.parser.head_done)
        transport.write(b"0\r\n\r\n")

    async def close(self) -> None:
        """Close the idle connections; those in use close when released."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
