"""A hostile upstream behind a real FrameX proxy: each path misbehaves in its own way, and
the caller gets exactly the answer HTTP requires; the next caller, on the same pool (one
connection at most), always gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.builtins.proxy.conftest import write_config
from tests.builtins.proxy.raw_upstream import Behaviour, RawUpstream, Seen, answer, ok
from tests.server import Server, framex_server

INVALID = "Bad gateway: the upstream service sent an invalid or incomplete answer."
TIMEOUT = "Gateway timeout: the upstream service did not answer in time."


def later(first: bytes, rest: bytes, event: str | None = None, pause: float = 0.3) -> Behaviour:
    """``first``, then ``rest`` ``pause`` s later (or once the test fires ``event``)."""

    async def behaviour(upstream: RawUpstream, seen: Seen, writer: asyncio.StreamWriter) -> bool:
        writer.write(first)
        await writer.drain()
        if event is None:
            await asyncio.sleep(pause)  # the next part in a packet of its own
        else:
            await upstream.event(event).wait()
            upstream.event(event).clear()
        writer.write(rest)
        await writer.drain()
        return True

    return behaviour


def byte_by_byte(data: bytes, pause: float = 0.0, keep: bool = True) -> Behaviour:
    async def behaviour(upstream: RawUpstream, seen: Seen, writer: asyncio.StreamWriter) -> bool:
        for at in range(len(data)):
            if writer.is_closing():
                return False
            writer.write(data[at : at + 1])
            await writer.drain()
            await asyncio.sleep(pause)
        return keep

    return behaviour


async def drop_if_reused(upstream: RawUpstream, seen: Seen, writer: asyncio.StreamWriter) -> bool:
    """As a server whose idle timeout ran out just as the request came: read, then close."""
    if seen.index > 0:
        return False
    writer.write(ok(b"fresh"))
    await writer.drain()
    return True


async def echo_headers(upstream: RawUpstream, seen: Seen, writer: asyncio.StreamWriter) -> bool:
    writer.write(
        b"HTTP/1.1 200 OK\r\nconnection: x-hop, keep-alive\r\nkeep-alive: timeout=5\r\nx-hop: upstream-private\r\n"
        b"x-kept: 1\r\ncontent-length: 2\r\n\r\nok"
    )
    await writer.drain()
    return True


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/plain\r\n"
SPLIT = CHUNKED_HEAD + b"x-split: yes\r\n\r\n5;ext=1\r\nsplit\r\n6\r\n bytes\r\n0\r\nx-trailer: t\r\n\r\n"

BEHAVIOURS: dict[str, tuple[str, Behaviour]] = {
    "/api/v1/ok": ("GET", answer(ok(b"ok"))),
    "/api/v1/items/{rest}": ("GET", answer(ok(b"item"))),
    "/api/v1/headers": ("GET", echo_headers),
    "/api/v1/interim-split": ("GET", later(b"HTTP/1.1 100 Continue\r\n\r\n", ok(b"A-body"))),
    "/api/v1/interim-joined": (
        "GET",
        answer(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n" + ok(b"joined")),
    ),
    "/api/v1/switching": (
        "GET",
        answer(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\n"),
    ),
    "/api/v1/extra": (
        "GET",
        answer(ok(b"first") + b"HTTP/1.1 200 OK\r\nx-second: 1\r\ncontent-length: 6\r\n\r\nsecond"),
    ),
    "/api/v1/extra-later": ("GET", later(ok(b"mine"), ok(b"stolen"), event="stray")),
    "/api/v1/split-bytes": ("GET", byte_by_byte(SPLIT)),
    "/api/v1/length-and-chunked": (
        "GET",
        answer(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ),
    "/api/v1/two-lengths": ("GET", answer(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!")),
    "/api/v1/same-length-twice": (
        "GET",
        answer(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\nhello"),
    ),
    "/api/v1/negative-length": ("GET", answer(b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\nhello")),
    "/api/v1/bad-chunk-size": ("GET", answer(CHUNKED_HEAD + b"\r\nzz\r\nhello\r\n0\r\n\r\n")),
    "/api/v1/chunk-extensions-trailers": (
        "GET",
        answer(
            CHUNKED_HEAD + b"\r\n5;name=value;flag\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\nx-other: u\r\n\r\n"
        ),
    ),
    "/api/v1/huge-head": (
        "GET",
        answer(b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * (70 * 1024) + b"\r\ncontent-length: 2\r\n\r\nok"),
    ),
    "/api/v1/no-length-close": (
        "GET",
        answer(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end", keep=False),
    ),
    "/api/v1/close-mid-body": ("GET", answer(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial", keep=False)),
    "/api/v1/close-mid-chunks": ("GET", answer(CHUNKED_HEAD + b"\r\n4\r\npart\r\n", keep=False)),
    "/api/v1/slow-drip": ("GET", byte_by_byte(ok(b"too late, and far too slow"), pause=0.1)),
    "/api/v1/replay": ("GET", drop_if_reused),
    "/api/v1/no-replay": ("POST", drop_if_reused),
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[RawUpstream]:
    with RawUpstream(BEHAVIOURS).running() as running:
        yield running


@pytest.fixture(scope="module")
def proxy_server(upstream: RawUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = write_config(
        tmp_path_factory.mktemp("hostile") / "config.yaml",
        {
            "load_builtin_plugins": ["proxy"],
            "load_plugins": [],
            "plugins": {
                "proxy": {
                    # One pooled connection: every caller after a misbehaving answer gets
                    # that connection, unless the proxy closed it.
                    "upstreams": {upstream.url: {"enable": ["/api/v1/*"], "openapi_path": "/openapi.json"}},
                    "timeout": 1.0,
                    "max_connections": 1,
                }
            },
        },
    )
    with framex_server("--config", str(config)) as server:
        yield server


@pytest.fixture(scope="module")
def caller(proxy_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy_server.url, timeout=15) as client:
        yield client


def next_caller(caller: httpx.Client, upstream: RawUpstream) -> Seen:
    """The next caller gets its own answer, nothing of the one before; returns its request as the upstream saw it."""
    response = caller.get("/api/v1/ok")
    assert (response.status_code, response.content) == (200, b"ok")
    assert "x-second" not in response.headers
    return upstream.last("/api/v1/ok")


def connection_of(upstream: RawUpstream, path: str) -> int:
    return upstream.last(path).connection


@pytest.mark.parametrize(
    ("path", "status", "body", "reused"),
    [
        ("/api/v1/interim-split", 200, b"A-body", True),
        ("/api/v1/interim-joined", 200, b"joined", True),
        ("/api/v1/split-bytes", 200, b"split bytes", True),
        ("/api/v1/same-length-twice", 200, b"hello", True),
        ("/api/v1/chunk-extensions-trailers", 200, b"hello world", True),
        ("/api/v1/no-length-close", 200, b"until the end", False),
        ("/api/v1/extra", 200, b"first", False),
    ],
)
def test_answers_the_caller_gets_whole(
    caller: httpx.Client, upstream: RawUpstream, path: str, status: int, body: bytes, reused: bool
) -> None:
    response = caller.get(path)
    assert (response.status_code, response.content) == (status, body)
    assert "x-trailer" not in response.headers and "x-second" not in response.headers
    assert response.headers.get_list("content-length") in ([str(len(body))], [])
    connection = connection_of(upstream, path)
    if not reused:
        assert upstream.wait_closed(connection)
    assert (next_caller(caller, upstream).connection == connection) is reused


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/api/v1/switching", 502, INVALID),
        ("/api/v1/length-and-chunked", 502, INVALID),
        ("/api/v1/two-lengths", 502, INVALID),
        ("/api/v1/negative-length", 502, INVALID),
        ("/api/v1/bad-chunk-size", 502, INVALID),
        ("/api/v1/huge-head", 502, INVALID),
        ("/api/v1/close-mid-body", 502, INVALID),
        ("/api/v1/slow-drip", 504, TIMEOUT),
    ],
)
def test_broken_answers_are_gateway_errors_and_their_connection_is_closed(
    caller: httpx.Client, upstream: RawUpstream, path: str, status: int, message: str
) -> None:
    response = caller.get(path)
    assert response.status_code == status
    assert response.json()["message"] == message
    connection = connection_of(upstream, path)
    assert upstream.wait_closed(connection)
    assert next_caller(caller, upstream).connection != connection


def test_a_stream_broken_after_its_status_is_cut_off_not_passed_off_as_whole(
    caller: httpx.Client, upstream: RawUpstream
) -> None:
    with caller.stream("GET", "/api/v1/close-mid-chunks") as response:
        assert response.status_code == 200  # sent before the body broke
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()
    next_caller(caller, upstream)


def test_bytes_while_no_request_is_outstanding_close_the_connection(
    caller: httpx.Client, upstream: RawUpstream
) -> None:
    response = caller.get("/api/v1/extra-later")
    assert (response.status_code, response.content) == (200, b"mine")
    connection = connection_of(upstream, "/api/v1/extra-later")
    upstream.fire("stray")  # an answer nobody asked for, on the idle connection
    assert upstream.wait_closed(connection)
    assert next_caller(caller, upstream).connection != connection


def test_only_idempotent_requests_are_sent_again_on_a_fresh_connection(
    caller: httpx.Client, upstream: RawUpstream
) -> None:
    next_caller(caller, upstream)  # a pooled connection, for the next request to reuse
    replayed = caller.get("/api/v1/replay")
    assert (replayed.status_code, replayed.content) == (200, b"fresh")
    first, second = upstream.requests_to("/api/v1/replay")[-2:]
    assert first.index > 0 and second.index == 0 and first.connection != second.connection

    next_caller(caller, upstream)
    before = len(upstream.requests_to("/api/v1/no-replay"))
    refused = caller.post("/api/v1/no-replay", content=b"charge the card")
    assert refused.status_code == 502
    sent = upstream.requests_to("/api/v1/no-replay")[before:]
    assert [s.body for s in sent] == [b"charge the card"]  # once: the upstream may have acted on it
    next_caller(caller, upstream)


def test_headers_named_in_connection_are_dropped_both_ways(caller: httpx.Client, upstream: RawUpstream) -> None:
    response = caller.get(
        "/api/v1/headers", headers={"Connection": "x-caller-hop", "X-Caller-Hop": "secret", "X-Also-Kept": "1"}
    )
    assert response.status_code == 200
    assert "x-hop" not in response.headers and "keep-alive" not in response.headers
    assert response.headers["x-kept"] == "1"
    seen = upstream.last("/api/v1/headers")
    assert seen.header(b"x-caller-hop") is None and seen.header(b"connection") is None
    assert seen.header(b"x-also-kept") == b"1"


@pytest.mark.parametrize(
    ("sent", "target"),
    [
        ("/api/v1/items/a%3Fb=c", b"/api/v1/items/a%3Fb=c"),  # stays in the path
        ("/api/v1/items/a%20b", b"/api/v1/items/a%20b"),
        ("/api/v1/items/%E2%82%AC", b"/api/v1/items/%E2%82%AC"),
        ("/api/v1/items/100%25?q=%0D%0A&q=%26", b"/api/v1/items/100%25?q=%0D%0A&q=%26"),
    ],
)
def test_the_upstream_gets_the_path_as_the_caller_encoded_it(
    caller: httpx.Client, upstream: RawUpstream, sent: str, target: bytes
) -> None:
    response = caller.get(httpx.URL(sent))
    assert (response.status_code, response.content) == (200, b"item")
    assert upstream.seen[-1].target == target


@pytest.mark.parametrize(
    "sent",
    ["/api/v1/items/x%0D%0AX-Injected:%20yes", "/api/v1/items/x%0D%0AContent-Length:%205", "/api/v1/items/a%00b"],
)
def test_control_characters_in_the_path_are_refused_before_anything_is_sent(
    caller: httpx.Client, upstream: RawUpstream, sent: str
) -> None:
    before = len(upstream.seen)
    response = caller.get(httpx.URL(sent))
    assert response.status_code == 400
    assert response.json()["message"] == "Bad request: the path has characters that cannot be forwarded."
    assert len(upstream.seen) == before
    next_caller(caller, upstream)
