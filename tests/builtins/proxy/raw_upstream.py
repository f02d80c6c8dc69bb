"""A hostile upstream for the proxy tests: a raw asyncio TCP server on 127.0.0.1, in a
thread of its own, that answers each path with whatever bytes its behaviour writes, and
records every request and every connection the proxy closed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field


@dataclass
class Seen:
    """A request as it reached the upstream: the connection (counted from 1), its line, its headers."""

    connection: int
    index: int
    """Requests before this one on the same connection."""
    method: str
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.split(b"?", 1)[0].decode("latin-1")

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n.lower() == name), None)


Behaviour = Callable[["RawUpstream", Seen, asyncio.StreamWriter], Awaitable[bool]]
"""Writes the answer to a request; True to read the next request on that connection."""


@dataclass
class RawUpstream:
    """Serves ``behaviours`` (path -> behaviour) and an OpenAPI document listing them at ``/openapi.json``."""

    behaviours: dict[str, tuple[str, Behaviour]]
    """Path -> (method, behaviour)."""
    seen: list[Seen] = field(default_factory=list)
    closed: set[int] = field(default_factory=set)
    """Connections the other side closed."""
    host: str = "127.0.0.1"
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _events: dict[str, asyncio.Event] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _count: int = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def openapi(self) -> bytes:
        paths: dict[str, object] = {}
        for path, (method, _) in self.behaviours.items():
            params = [{"name": "rest", "in": "path", "required": True, "schema": {"type": "string"}}]
            paths[path] = {
                method.lower(): {
                    "responses": {"200": {"description": "?"}},
                    **({"parameters": params} if "{" in path else {}),
                }
            }
        return json.dumps({"openapi": "3.1.0", "info": {"title": "raw", "version": "1"}, "paths": paths}).encode()

    # -- from the tests' thread

    def requests_to(self, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path == path]

    def last(self, path: str) -> Seen:
        found = self.requests_to(path)
        assert found, f"no request reached {path}"
        return found[-1]

    def wait_closed(self, connection: int, timeout: float = 10.0) -> bool:
        """Whether the proxy closed ``connection`` within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if connection in self.closed:
                    return True
            time.sleep(0.01)
        return False

    def fire(self, name: str) -> None:
        """Set the event ``name`` a behaviour waits for."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.event(name).set)

    def event(self, name: str) -> asyncio.Event:
        return self._events.setdefault(name, asyncio.Event())

    # -- the server

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small writes leave as separate segments
        with self._lock:
            self._count += 1
            connection = self._count
        index = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                line, *fields = head[:-4].split(b"\r\n")
                method, target, _ = line.split(b" ", 2)
                headers = [(n.strip(), v.strip()) for n, v in (f.split(b":", 1) for f in fields)]
                seen = Seen(connection, index, method.decode(), target, headers, b"")
                length = seen.header(b"content-length")
                if length is not None:
                    seen.body = await reader.readexactly(int(length))
                elif seen.header(b"transfer-encoding") == b"chunked":
                    while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
                        seen.body += (await reader.readexactly(size + 2))[:-2]
                    await reader.readuntil(b"\r\n")
                with self._lock:
                    self.seen.append(seen)
                index += 1
                if seen.path == "/openapi.json":
                    body = self.openapi()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%b"
                        % (len(body), body)
                    )
                    continue
                found = next((b for p, (m, b) in self.behaviours.items() if _matches(p, seen.path)), None)
                if found is None:
                    writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                    continue
                if not await found(self, seen, writer):
                    return
        except ConnectionError:
            return
        finally:
            with self._lock:
                self.closed.add(connection)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    @contextlib.contextmanager
    def running(self) -> Iterator[RawUpstream]:
        started = threading.Event()
        stop: list[asyncio.Event] = []

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            server = await asyncio.start_server(self._serve, self.host, self.port)
            self.port = server.sockets[0].getsockname()[1]
            stop.append(asyncio.Event())
            started.set()
            async with server:
                await stop[0].wait()
                server.close()

        thread = threading.Thread(target=asyncio.run, args=(main(),), name="raw-upstream", daemon=True)
        thread.start()
        assert started.wait(10), "the raw upstream did not start"
        try:
            yield self
        finally:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(stop[0].set)
            thread.join(10)


def _matches(pattern: str, path: str) -> bool:
    if "{" not in pattern:
        return pattern == path
    prefix = pattern.split("{", 1)[0]
    return path.startswith(prefix) and "/" not in path[len(prefix) :]


def answer(data: bytes, keep: bool = True) -> Behaviour:
    """Write ``data`` at once; keep the connection or close it."""

    async def behaviour(upstream: RawUpstream, seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        return keep

    return behaviour


def ok(body: bytes) -> bytes:
    """A plain, well-formed answer."""
    return b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)
