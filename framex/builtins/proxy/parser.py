"""Reading an HTTP/1.1 response from bytes as they arrive, trusting nothing in them.

The grammar is RFC 9112's: a status line, header fields (no folded lines), then a body
framed by ``Transfer-Encoding: chunked``, ``Content-Length``, or the end of the
connection. Interim ``1xx`` answers are read past, ``101`` is refused, the header block
is capped, and bytes after the end of the answer are reported (``trailing``), not read.
"""

from __future__ import annotations

import re
from collections import deque

MAX_HEADER_BYTES = 64 * 1024
"""Default cap of an answer's header block (interim answers and trailers count too)."""
MAX_CHUNK_LINE = 4096
"""Longest chunk-size line (with its extensions) read before the answer is refused."""
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
