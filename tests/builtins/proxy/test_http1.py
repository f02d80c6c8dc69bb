"""The proxy's HTTP/1.1 client against real servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from framex.builtins.proxy.client import Upstream
from framex.builtins.proxy.config import ProxySettings, UpstreamSettings
from framex.builtins.proxy.http1 import Pool, UpstreamClosedError, UpstreamProtocolError, host_header
from tests.builtins.proxy.raw_upstream import RawUpstream, answer, ok
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
        with pytest.raises(UpstreamProtocolError, match="invalid HTTP from the upstream: malformed status line"):
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


def test_the_host_header_brackets_an_ipv6_address() -> None:
    assert host_header("::1", 8001) == b"[::1]:8001"
    assert host_header("127.0.0.1", 80) == b"127.0.0.1:80"
    assert host_header("upstream.internal", 9000) == b"upstream.internal:9000"


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
async def test_an_ipv6_upstream_gets_a_well_formed_host() -> None:
    hosts: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        hosts.extend(line[6:] for line in head.split(b"\r\n") if line.lower().startswith(b"host: "))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(record, "::1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = Pool("::1", port, 1, connect_timeout=2.0, timeout=5.0)
    try:
        async with await pool.request("GET", b"/", []) as response:
            assert await response.read() == b"ok"
    finally:
        await pool.close()
        server.close()
        await server.wait_closed()
    assert hosts == [b"[::1]:%d" % port]


async def test_the_header_block_cap_is_configurable_and_an_oversized_block_is_refused() -> None:
    head = b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 3000 + b"\r\ncontent-length: 2\r\n\r\nok"

    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):  # until the pool closes the connection
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(head)
                await writer.drain()

    async with raw_server(big) as pool:
        pool.max_header_bytes = 2048
        with pytest.raises(UpstreamProtocolError, match="header block larger than 2048 bytes"):
            await pool.request("GET", b"/", [])
        pool.max_header_bytes = 4096
        async with await pool.request("GET", b"/", []) as response:
            assert await response.read() == b"ok"


async def test_a_target_that_cannot_go_on_a_request_line_is_refused_before_sending() -> None:
    async def nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise AssertionError("nothing may reach the upstream")

    async with raw_server(nothing) as pool:
        for target in (b"/a b", b"/a\r\nx: y", b"relative", b"/\x00", "/€".encode()):
            with pytest.raises(ValueError, match="request target"):
                await pool.request("GET", target, [])
        with pytest.raises(ValueError, match="method"):
            await pool.request("GET /x HTTP/1.1\r\n", b"/", [])


def test_pools_are_closed_and_forgotten_with_their_loop() -> None:
    with RawUpstream({"/x": ("GET", answer(ok(b"ok")))}).running() as raw:
        upstream = Upstream(raw.url, UpstreamSettings(enable=[]), ProxySettings())

        async def call() -> bytes:
            async with await upstream.request("GET", b"/x") as response:
                return await response.read()

        for _ in range(2):
            assert asyncio.run(call()) == b"ok"  # a loop of its own each time, as a script's
            connection = raw.last("/x").connection
            assert raw.wait_closed(connection), "the connection outlived its loop"
            assert upstream._pools == {}
        assert [s.connection for s in raw.requests_to("/x")] == [1, 2]
