"""One request, two apps: the same plugin served the compiled way and through FastAPI's path.

A :class:`Call` is a request written out byte for byte (headers, body, chunking), so both
apps get exactly the same input. Their answers are compared as an :class:`Answer`: the
status, every response header, and the body, after replacing only what legitimately
differs from one request to the next (the envelope's ``timestamp``, and a request id the
server generated).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import framex
from framex.container import close_container

PLUGIN = "tests.fixture_plugins.signatures"

PER_RESPONSE_HEADERS = frozenset({"date"})
"""Headers a real server stamps on each response (uvicorn's clock); never compared."""

_ENVELOPE_TIMESTAMP = re.compile(rb'^(\{"status":\d+,"message":"(?:[^"\\]|\\.)*",)"timestamp":"[^"]*"')
"""Only the envelope's own timestamp: a `"timestamp"` key a handler echoes back stays as it is."""
_GENERATED_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Call:
    """A request as sent: ``url`` is the path and query as written (httpx percent-encodes
    only what cannot go on the wire: spaces, non-ASCII)."""

    method: str
    url: str
    headers: tuple[tuple[str, str | bytes], ...] = ()
    body: bytes | None = None
    chunks: int = 1
    """Above 1: the body goes in that many pieces, without a length (``Transfer-Encoding: chunked``)."""

    def content(self) -> bytes | Iterator[bytes] | None:
        if self.body is None or self.chunks <= 1:
            return self.body
        size = max(1, -(-len(self.body) // self.chunks))
        return iter([self.body[i : i + size] for i in range(0, len(self.body), size)] or [b""])

    def sent_ids(self) -> set[str]:
        return {_text(v) for k, v in self.headers if k.lower() == "x-request-id"}


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]
    """Every header, names lower-cased, sorted: their order carries no meaning."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def is_json(self) -> bool:
        return dict(self.headers).get("content-type", "").startswith("application/json") and bool(self.body)


def answer(response: httpx.Response, call: Call) -> Answer:
    """``response`` with the envelope's timestamp and a generated request id replaced by placeholders.

    A generated id is 32 hex digits and a timestamp always has the same length, so
    ``content-length`` is compared as sent: a body that differs in length after these
    replacements differs before them too.
    """
    body = _ENVELOPE_TIMESTAMP.sub(rb'\1"timestamp":"<timestamp>"', response.content, count=1)
    headers = [(k.lower(), v) for k, v in response.headers.multi_items() if k.lower() not in PER_RESPONSE_HEADERS]
    rid = response.headers.get("x-request-id")
    if rid is not None and rid not in call.sent_ids():
        # Made by the server for this request. Only a generated id is replaced: the
        # client's own can be any short text that also occurs elsewhere in an echo.
        assert _GENERATED_ID.fullmatch(rid), rid
        body = body.replace(rid.encode(), b"<request-id>")
        headers = [(k, "<request-id>" if k == "x-request-id" else v) for k, v in headers]
    return Answer(response.status_code, tuple(sorted(headers)), body)


def assert_same(compiled: Answer, fastapi: Answer, call: Call) -> None:
    """Equal status, headers and body bytes; the parsed JSON is compared first, for a readable diff."""
    where = f"{call.method} {call.url} headers={call.headers!r} body={call.body!r} chunks={call.chunks}"
    assert compiled.status == fastapi.status, where
    if compiled.is_json() and fastapi.is_json():
        assert compiled.json() == fastapi.json(), where
    assert compiled.body == fastapi.body, where
    assert compiled.headers == fastapi.headers, where


class Twins:
    """Two clients of the same plugin: ``compiled`` (``server.compiled_routes: true``) and
    ``fastapi`` (false); :meth:`check` sends a call to both and compares the answers."""

    def __init__(self, compiled: httpx.Client, fastapi: httpx.Client) -> None:
        self.compiled = compiled
        self.fastapi = fastapi

    def send(self, client: httpx.Client, call: Call) -> httpx.Response:
        client.cookies.clear()  # a Set-Cookie answer must not reach the next request
        # Header text goes as UTF-8 (httpx would refuse non-ASCII text), as many clients send it.
        headers = [(k.encode(), v.encode() if isinstance(v, str) else v) for k, v in call.headers]
        if isinstance(client, TestClient) and call.chunks > 1:
            headers.append((PIECES_HEADER, str(call.chunks).encode()))
        return client.request(call.method, call.url, headers=headers, content=call.content())

    def check(self, call: Call) -> tuple[Answer, Answer]:
        compiled = answer(self.send(self.compiled, call), call)
        fastapi = answer(self.send(self.fastapi, call), call)
        assert_same(compiled, fastapi, call)
        return compiled, fastapi


@contextmanager
def in_process(compiled_routes: bool, **settings: Any) -> Iterator[TestClient]:
    """A started app serving the signatures plugin, and its client (redirects not followed)."""
    container = framex.create_container(
        None, load_plugins=[PLUGIN], load_builtin_plugins=[], server__compiled_routes=compiled_routes, **settings
    )
    try:
        app = framex.create_app(container)
        routes = container.compiled_routes()
        # The twin is what it claims to be: compiled routes there are, or none at all.
        assert routes.enabled is compiled_routes and (routes.count > 0) is compiled_routes
        with TestClient(InPieces(app), raise_server_exceptions=False, follow_redirects=False) as client:
            yield client
    finally:
        close_container(container)


PIECES_HEADER = b"x-test-body-pieces"


class InPieces:
    """Hands the app a request body in as many ``http.request`` messages as the
    ``x-test-body-pieces`` header says (the header itself never reaches the app).

    A server passes each piece of a chunked body on as it arrives; the test client reads
    the whole body first and sends it in one message, so a request path that only ever
    looks at the first message would pass in process.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pieces = 1
        if scope["type"] == "http":
            headers = [(k, v) for k, v in scope["headers"] if k != PIECES_HEADER]
            pieces = next((int(v) for k, v in scope["headers"] if k == PIECES_HEADER), 1)
            scope = {**scope, "headers": headers}
        if pieces <= 1:
            await self.app(scope, receive, send)
            return
        waiting: list[Message] = []

        async def piecewise() -> Message:
            if waiting:
                return waiting.pop(0)
            message = await receive()
            if message["type"] != "http.request" or message.get("more_body", False):
                return message
            body = message.get("body", b"")
            size = max(1, -(-len(body) // pieces))
            parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
            waiting.extend({"type": "http.request", "body": part, "more_body": True} for part in parts[1:])
            waiting.append({"type": "http.request", "body": b"", "more_body": False})
            return {"type": "http.request", "body": parts[0], "more_body": True}

        await self.app(scope, piecewise, send)
