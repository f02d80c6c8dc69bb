"""A small HTTP/1.1 client with a keep-alive pool, for forwarding at little cost per request.

One :class:`Pool` per upstream and event loop. A request borrows an idle connection (or
opens one), writes the request in one piece (a streamed body in chunked encoding), and
reads the answer with ``httptools``' parser: the head first, then the body in one piece
or chunk by chunk. The connection goes back to the pool once the body is read, if both
sides keep it alive. Header names and values stay bytes from end to end.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator

import httptools

IDLE_SECONDS = 4.0
"""Idle connections older than this are closed, not reused: servers close theirs after a
few seconds (uvicorn: 5), and a request sent as the server closes would be lost."""
HIGH_WATER = 1 << 20
"""Body bytes buffered unread before the connection stops reading (a slow consumer)."""


class UpstreamClosedError(ConnectionError):
    """The connection closed before the whole answer arrived."""

    def __init__(self, got_response: bool) -> None:
        super().__init__("the upstream closed the connection" + (" mid-answer" if got_response else ""))
        self.got_response = got_response


class _Connection(asyncio.Protocol):
    """One connection: one request at a time; parser callbacks fill the current response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.lost = False
        self.idle_since = 0.0
        self._writable: asyncio.Future[None] | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are no asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"invalid HTTP from the upstream: {exc}"))
            self.close()

    def eof_received(self) -> bool | None:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        response = self.response
        if response is not None and not response.complete:
            self._fail(UpstreamClosedError(response.head_received))
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(UpstreamClosedError(False))

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # -- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        response = self.response
        assert response is not None
        response.headers.append((name, value))
        if len(name) == 14 or len(name) == 12:  # content-length, content-type: read once, here
            lower = name.lower()
            if lower == b"content-length" and value.isdigit():
                response.content_length = int(value)
            elif lower == b"content-type":
                response.content_type = value.split(b";", 1)[0].strip().decode("latin-1").lower()

    def on_headers_complete(self) -> None:
        response = self.response
        assert response is not None
        response.status = self.parser.get_status_code()
        response.head_received = True
        response.wake()

    def on_body(self, body: bytes) -> None:
        response = self.response
        assert response is not None
        response.chunks.append(body)
        response.buffered += len(body)
        if response.buffered > HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
        response.wake()

    def on_message_complete(self) -> None:
        response = self.response
        assert response is not None
        response.complete = True
        response.keep_alive = self.parser.should_keep_alive()
        response.wake()

    # --

    def _fail(self, exc: BaseException) -> None:
        response = self.response
        if response is not None and response.error is None:
            response.error = exc
            response.wake()

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

    def __init__(self, pool: Pool, connection: _Connection, timeout: float) -> None:
        self._pool = pool
        self._connection = connection
        self._timeout = timeout
        self._waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.content_length: int | None = None
        self.content_type = ""
        """The media type, lower case, without parameters."""
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.head_received = False
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self._released = False

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        """Until the parser reports something (or the upstream stays silent too long)."""
        if self.error is not None:
            raise self.error
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = loop.call_later(self._timeout, waiter.cancel)
        try:
            await waiter
        except asyncio.CancelledError:
            if not waiter.cancelled() or asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise
            raise TimeoutError(f"no data from the upstream for {self._timeout:g} s") from None
        finally:
            timer.cancel()
            self._waiter = None
        if self.error is not None:
            raise self.error

    async def _head(self) -> None:
        while not self.head_received:
            await self._wait()

    def _take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        transport = self._connection.transport
        if transport is not None and not self.complete:
            transport.resume_reading()
        return data

    async def read(self) -> bytes:
        """The whole body."""
        parts = []
        while True:
            if self.chunks:
                parts.append(self._take())
            if self.complete:
                return b"".join(parts)
            await self._wait()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives."""
        while True:
            if self.chunks:
                yield self._take()
            if self.complete:
                return
            await self._wait()

    def release(self) -> None:
        """Back to the pool when the answer was read whole and both sides keep the
        connection; closed otherwise."""
        if self._released:
            return
        self._released = True
        self._pool._give_back(self._connection, self.complete and self.keep_alive and self.error is None)

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


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
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.host_header = f"{host}:{port}".encode("latin-1")
        self.connect_timeout = connect_timeout
        self.timeout = timeout
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
        the answer's head is in. Release the response when done with it."""
        await self._slots.acquire()
        try:
            # A reused connection the server closed just now loses the request before
            # any answer: a body that can be sent again is, on a new connection.
            for attempt in range(2):
                connection = self._idle_connection() if attempt == 0 else None
                reused = connection is not None
                if connection is None:
                    connection = await self._connect()
                response = Response(self, connection, self.timeout)
                connection.response = response
                try:
                    await self._send(connection, method, target, headers, body)
                    await response._head()
                    return response
                except UpstreamClosedError as exc:
                    connection.close()
                    connection.response = None
                    if not (reused and not exc.got_response and isinstance(body, bytes)):
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
        assert transport is not None
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
                raise UpstreamClosedError(connection.response is not None and connection.response.head_received)
        transport.write(b"0\r\n\r\n")

    async def close(self) -> None:
        """Close the idle connections; those in use close when released."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
