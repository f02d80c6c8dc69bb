"""The proxy's HTTP/1.1 client against real servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from framex.builtins.proxy.http1 import Pool, UpstreamClosedError
from tests.server import Server

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[Pool]:
    """A hand-written HTTP server on loopback (answers no real server gives), and a pool to it.

    Every connection's writer is closed at the end, its handler done or not.
    """
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await handler(reader, writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    pool = Pool("127.0.0.1", server.sockets[0].getsockname()[1], 2, connect_timeout=2.0, timeout=5.0)
    try:
        yield pool
    finally:
        await pool.close()
        server.close()
        for writer in writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await server.wait_closed()


def _pool(server: Server, timeout: float = 5.0, limit: int = 4) -> Pool:
    port = int(server.url.rsplit(":", 1)[1])
    return Pool("127.0.0.1", port, limit, connect_timeout=2.0, timeout=timeout)


async def test_connections_are_kept_and_reused(plain_upstream: Server) -> None:
    pool = _pool(plain_upstream)
    try:
        bodies = []
        for i in range(5):
            async with await pool.request("GET", f"/api/v1/items/{i}?tags=a&tags=b".encode(), []) as response:
                assert response.status == 200
                assert response.content_type == "application/json"
                bodies.append(json.loads(await response.read()))
        assert [b["item_id"] for b in bodies] == [0, 1, 2, 3, 4]
        assert bodies[0]["tags"] == ["a", "b"]
        assert len(pool._idle) == 1  # one connection served all five
    finally:
        await pool.close()


async def test_a_streamed_body_is_sent_chunked(plain_upstream: Server) -> None:
    pool = _pool(plain_upstream)
    item = json.dumps({"name": "x" * 5000, "price": 1.5}).encode()

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(item), 1000):
            yield item[start : start + 1000]

    try:
        headers = [(b"content-type", b"application/json")]
        async with await pool.request("POST", b"/api/v1/items", headers, pieces()) as response:
            assert response.status == 201
            assert (
                hashlib.sha256(await response.read()).digest()
                == hashlib.sha256(json.dumps(json.loads(item) | {"tags": []}, separators=(",", ":")).encode()).digest()
            )
    finally:
        await pool.close()


async def test_a_silent_upstream_times_out_and_its_connection_is_not_reused(plain_upstream: Server) -> None:
    pool = _pool(plain_upstream, timeout=0.3)
    try:
        with pytest.raises(TimeoutError):
            await pool.request("GET", b"/api/v1/stuck", [])
        assert pool._idle == []
        async with await pool.request("GET", b"/api/v1/items/1", []) as response:  # the slot came back
            assert response.status == 200
    finally:
        await pool.close()


async def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    closed = asyncio.Event()

    async def one_answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # keep-alive announced, then closed: as a server whose idle timeout ran out
        closed.set()

    async with raw_server(one_answer_then_close) as pool:
        for _ in range(3):
            async with await pool.request("GET", b"/", []) as response:
                assert await response.read() == b"ok"
            await closed.wait()
            closed.clear()


async def test_garbage_from_the_upstream_is_a_connection_error() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    async with raw_server(garbage) as pool:
        with pytest.raises(ConnectionError, match="invalid HTTP"):
            await pool.request("GET", b"/", [])


async def test_an_answer_cut_short_is_an_error() -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this")
        await writer.drain()
        writer.close()

    async with raw_server(short) as pool:
        response = await pool.request("GET", b"/", [])
        async with response:
            with pytest.raises(UpstreamClosedError, match="mid-answer"):
                await response.read()
        assert pool._idle == []


async def test_nothing_listening_is_a_connection_error() -> None:
    from tests.server import free_port

    pool = Pool("127.0.0.1", free_port(), 2, connect_timeout=2.0, timeout=5.0)
    with pytest.raises(ConnectionRefusedError):
        await pool.request("GET", b"/", [])
    await pool.close()
