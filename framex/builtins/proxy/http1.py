"""A small HTTP/1.1 client with a keep-alive pool, for forwarding at little cost per request.

One :class:`Pool` per upstream and event loop. A request borrows an idle connection (or
opens one), writes the request in one piece (a streamed body in chunked encoding), and
reads the answer with :class:`ResponseParser`: the head first, then the body in one piece
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
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator

IDLE_SECONDS = 4.0
"""Idle connections older than this are closed, not reused: servers close theirs after a
few seconds (uvicorn: 5), and a request sent as the server closes would be lost."""
HIGH_WATER = 1 << 20
"""Body bytes buffered unread before the connection stops reading (a slow consumer)."""
MAX_HEADER_BYTES = 64 * 1024
"""Default cap of an answer's header block (interim answers and trailers count too)."""
MAX_CHUNK_LINE = 4096
"""Longest chunk-size line (with its extensions) read before the answer is refused."""
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
"""Methods that may be sent again when a reused connection turns out closed (RFC 9110 9.2.2)."""

_HEAD_END = re.compile(rb"\n\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: [\t\x20-\x7e\x80-\xff]*)?")
_FIELD = re.compile(
    rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*((?:[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*)?)[ \t]*"
)
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:;.*)?[ \t]*")
_DIGITS = re.compile(rb"[0-9]+")

# Parser states.
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_EOF, _DONE = range(8)


class UpstreamClosedError(ConnectionError):
    """The connection closed before the whole answer arrived."""

    def __init__(self, got_response: bool) -> None:
        super().__init__("the upstream closed the connection" + (" mid-answer" if got_response else ""))
        self.got_response = got_response


class UpstreamProtocolError(ConnectionError):
    """The upstream's answer breaks HTTP/1.1 or this client's limits; its connection is closed."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"invalid HTTP from the upstream: {problem}")


def _fields(lines: list[bytes], into: list[tuple[bytes, bytes]]) -> None:
    for line in lines:
        if line[-1:] == b"\r":
            line = line[:-1]
        match = _FIELD.fullmatch(line)
        if match is None:
            # Folded lines (obs-fold) are refused too: RFC 9112 5.2 lets a proxy answer 502.
            raise UpstreamProtocolError(f"malformed header line {line[:80]!r}")
        into.append((match[1], match[2]))


class ResponseParser:
    """The answer to one request of ``method``, from bytes fed as they arrive.

    After :meth:`feed`: ``status`` and ``headers`` once ``head_done``; body bytes appended
    to ``body``; ``complete`` once the framing says the answer ended, ``trailing`` when
    bytes came after that. Errors raise :class:`UpstreamProtocolError`.
    """

    def __init__(self, method: str, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        self.no_body = method == "HEAD"
        self.max_header_bytes = max_header_bytes
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.content_length: int | None = None
        self.content_type = ""
        """The media type, lower case, without parameters."""
        self.keep_alive = True
        self.head_done = False
        self.complete = False
        self.trailing = False
        self.body: deque[bytes] = deque()
        self._buffer = b""
        self._state = _HEAD
        self._remaining = 0
        self._head_bytes = 0
        """Header bytes read so far (interim answers and trailers included)."""

    def feed(self, data: bytes) -> None:
        """Parse ``data`` (the next bytes from the connection)."""
        if self._state == _DONE:
            self.trailing = self.trailing or bool(data)
            return
        buffer = self._buffer + data if self._buffer else data
        self._buffer = b""
        while buffer:
            state = self._state
            if state in (_LENGTH, _CHUNK_DATA):
                if len(buffer) <= self._remaining:
                    self.body.append(buffer)
                    self._remaining -= len(buffer)
                    buffer = b""
                else:
                    self.body.append(buffer[: self._remaining])
                    buffer = buffer[self._remaining :]
                    self._remaining = 0
                if self._remaining == 0:
                    self._state = _DONE if state == _LENGTH else _CHUNK_END
            elif state == _UNTIL_EOF:
                self.body.append(buffer)
                buffer = b""
            elif state in (_HEAD, _TRAILERS):
                if state == _TRAILERS:  # no trailers: the empty line right away
                    end = 2 if buffer[:2] == b"\r\n" else 1 if buffer[:1] == b"\n" else 0
                    if end:
                        self._head_bytes += end
                        buffer = buffer[end:]
                        self._state = _DONE
                        continue
                    if buffer == b"\r":
                        break  # wait for what follows the CR
                match = _HEAD_END.search(buffer)
                if match is None:
                    if self._head_bytes + len(buffer) > self.max_header_bytes:
                        self._too_big()
                    break
                self._head_bytes += match.end()
                if self._head_bytes > self.max_header_bytes:
                    self._too_big()
                lines = buffer[: match.start()].split(b"\n")
                buffer = buffer[match.end() :]
                if state == _HEAD:
                    self._head(lines)
                else:
                    _fields(lines, [])  # trailers are checked and dropped: nothing passes them on
                    self._state = _DONE
            elif state == _CHUNK_SIZE:
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > MAX_CHUNK_LINE:
                        raise UpstreamProtocolError("chunk-size line too long")
                    break
                match = _CHUNK_LINE.fullmatch(buffer, 0, end)
                if match is None:
                    raise UpstreamProtocolError(f"bad chunk-size line {buffer[: min(end, 80)]!r}")
                buffer = buffer[end + 2 :]
                self._remaining = int(match[1], 16)
                self._state = _CHUNK_DATA if self._remaining else _TRAILERS
            elif state == _CHUNK_END:
                if len(buffer) < 2 and b"\r\n".startswith(buffer):
                    break
                if buffer[:2] != b"\r\n":
                    raise UpstreamProtocolError("chunk data longer than its size")
                buffer = buffer[2:]
                self._state = _CHUNK_SIZE
            else:  # _DONE
                self.trailing = True
                break
        if self._state == _DONE:
            self.complete = True
        else:
            self._buffer = buffer

    def feed_eof(self) -> None:
        """The connection closed: ends an answer framed by the close, else raises
        :class:`UpstreamClosedError`."""
        if self._state == _UNTIL_EOF and not self._buffer:
            self._state = _DONE
            self.complete = True
        elif self._state != _DONE:
            raise UpstreamClosedError(self.head_done)

    def _too_big(self) -> None:
        raise UpstreamProtocolError(f"header block larger than {self.max_header_bytes} bytes")

    def _head(self, lines: list[bytes]) -> None:
        status_line = lines[0][:-1] if lines[0][-1:] == b"\r" else lines[0]
        match = _STATUS_LINE.fullmatch(status_line)
        if match is None:
            raise UpstreamProtocolError(f"malformed status line {status_line[:80]!r}")
        status = int(match[2])
        headers: list[tuple[bytes, bytes]] = []
        _fields(lines[1:], headers)
        if status < 200:
            if status == 101:
                raise UpstreamProtocolError("101 Switching Protocols, which no request here asks for")
            if status < 100:
                raise UpstreamProtocolError(f"status {status}")
            return  # an interim answer: the final one follows
        self.status = status
        self.headers = headers
        self.head_done = True
        lengths: set[bytes] = set()
        codings: list[bytes] = []
        for name, value in headers:
            if len(name) == 14 and name.lower() == b"content-length":
                lengths.update(part.strip() for part in value.split(b","))
            elif len(name) == 17 and name.lower() == b"transfer-encoding":
                codings.append(value.lower())
            elif len(name) == 12 and name.lower() == b"content-type":
                self.content_type = value.split(b";", 1)[0].strip().decode("latin-1").lower()
            elif len(name) == 10 and name.lower() == b"connection" and b"close" in _tokens(value):
                self.keep_alive = False
        if match[1] == b"0":
            self.keep_alive = False  # HTTP/1.0: no persistent connection assumed
        if lengths and (len(lengths) > 1 or _DIGITS.fullmatch(next(iter(lengths))) is None):
            raise UpstreamProtocolError(f"bad Content-Length {sorted(lengths)!r}")
        if codings and codings != [b"chunked"]:
            raise UpstreamProtocolError(f"unsupported Transfer-Encoding {codings!r}")
        if codings and lengths:
            # RFC 9112 6.1: a sign of request smuggling or response splitting; refused.
            raise UpstreamProtocolError("both Content-Length and Transfer-Encoding")
        if lengths:
            self.content_length = int(next(iter(lengths)))
        if self.no_body or status in (204, 304):
            self._state = _DONE
        elif codings:
            self._state = _CHUNK_SIZE
        elif self.content_length is not None:
            self._remaining = self.content_length
            self._state = _LENGTH if self._remaining else _DONE
        else:
            self._state = _UNTIL_EOF
            self.keep_alive = False


def _tokens(value: bytes) -> list[bytes]:
    return [part.strip().lower() for part in value.split(b",")]


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
