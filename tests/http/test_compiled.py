"""The compiled request path's dispatcher: which requests it serves, and that the answers of
the middleware and routes it must not skip stay theirs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

import framex
from framex.container import Container, close_container
from framex.http.compiled import ENTRY_SCOPE_KEY

PLUGIN = "tests.fixture_plugins.routing_order"


@pytest.fixture
def make_app(isolated_default: None) -> Iterator[Any]:
    containers: list[Container] = []

    def make(**overrides: Any) -> tuple[FastAPI, Container]:
        container = framex.create_container(None, load_plugins=[PLUGIN], load_builtin_plugins=[], **overrides)
        containers.append(container)
        return framex.create_app(container), container

    yield make
    for container in containers:
        close_container(container)


class Spy:
    """Records whether each request took the compiled path (the dispatcher puts its entry in the scope)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.compiled: list[bool] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            self.compiled.append(ENTRY_SCOPE_KEY in scope)


async def client_of(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


async def get(app: ASGIApp, method: str, url: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.request(method, url, **kwargs)


async def test_the_router_order_decides_between_overlapping_routes(make_app: Any) -> None:
    app, container = make_app()
    spy = Spy(app)
    # The templated route comes first: FastAPI's router gives it `/order/fixed` for GET.
    answer = await get(spy, "GET", "/api/v1/order/fixed")
    assert answer.json()["data"] == {"route": "templated", "name": "fixed"}
    # POST of the same path: only the fixed route takes POST.
    answer = await get(spy, "POST", "/api/v1/order/fixed", params={"size": 3})
    assert answer.json()["data"] == {"route": "fixed-post", "size": 3}
    assert (await get(spy, "GET", "/api/v1/order/other")).json()["data"] == {"route": "templated", "name": "other"}
    assert spy.compiled == [True, True, True]
    assert container.compiled_routes().count == 4


async def test_other_methods_and_unknown_paths_take_fastapis_path(make_app: Any) -> None:
    app, _ = make_app()
    spy = Spy(app)
    assert (await get(spy, "DELETE", "/api/v1/order/fixed")).status_code == 405
    assert (await get(spy, "GET", "/api/v1/nowhere")).status_code == 404
    assert (await get(spy, "GET", "/health")).text == "ok"
    assert spy.compiled == [False, False, False]


async def test_a_route_added_before_a_plugin_route_keeps_its_paths(make_app: Any) -> None:
    app, _ = make_app()

    async def mine(request: Request) -> JSONResponse:
        return JSONResponse({"mine": True})

    # An embedding app's route placed first in the router: it serves its path, compiled or not.
    app.router.add_route("/api/v1/order/taken", mine, methods=["GET"])
    app.router.routes.insert(0, app.router.routes.pop())
    spy = Spy(app)
    assert (await get(spy, "GET", "/api/v1/order/taken")).json() == {"mine": True}
    assert (await get(spy, "GET", "/api/v1/order/free")).json()["data"]["name"] == "free"
    assert spy.compiled == [False, True]


async def test_protected_paths_need_their_key_on_both_paths(make_app: Any) -> None:
    app, _ = make_app(auth={"rules": {"/api/v1/order/*": ["secret-key"]}})
    spy = Spy(app)
    refused = await get(spy, "GET", "/api/v1/order/x")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["message"].startswith("Authentication required")
    wrong = await get(spy, "GET", "/api/v1/order/x", headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 401 and wrong.json()["message"] == "Invalid API key."
    for _ in range(2):  # checked, then remembered
        served = await get(spy, "GET", "/api/v1/order/x", headers={"Authorization": "Bearer secret-key"})
        assert served.json()["data"]["name"] == "x"
    assert (await get(spy, "GET", "/api/v1/teapot")).status_code == 418  # not covered by a rule
    # Refused requests are answered by the auth middleware; an accepted key stays compiled.
    assert spy.compiled == [False, False, True, True, True]


async def test_cross_origin_requests_get_cors_headers(make_app: Any) -> None:
    app, _ = make_app(server={"cors": {"allow_origins": ["https://page.example"]}})
    spy = Spy(app)
    crossing = await get(spy, "GET", "/api/v1/order/x", headers={"Origin": "https://page.example"})
    assert crossing.headers["access-control-allow-origin"] == "https://page.example"
    plain = await get(spy, "GET", "/api/v1/order/x")
    assert "access-control-allow-origin" not in plain.headers
    assert spy.compiled == [False, True]


async def test_bodies_over_the_limit_are_refused(make_app: Any) -> None:
    app, _ = make_app(server={"max_body_bytes": 10})
    spy = Spy(app)
    big = await get(spy, "POST", "/api/v1/order/fixed", content=b"x" * 11)
    assert big.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"xxxxx"

    # Counted while read, by FastAPI's path (this route reads no body: served).
    chunked = await get(spy, "POST", "/api/v1/order/fixed", content=chunks())
    assert chunked.status_code == 200
    small = await get(spy, "POST", "/api/v1/order/fixed", content=b"{}", headers={"content-type": "application/json"})
    assert small.status_code == 200
    assert spy.compiled == [False, False, True]


async def test_middleware_added_later_is_never_skipped(make_app: Any) -> None:
    app, _ = make_app()
    spy = Spy(app)
    assert (await get(spy, "GET", "/api/v1/order/x")).status_code == 200

    class Stamp:
        def __init__(self, inner: ASGIApp) -> None:
            self.inner = inner

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            async def stamped(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message["headers"], (b"x-stamp", b"1")]
                await send(message)

            await self.inner(scope, receive, stamped)

    app.add_middleware(Stamp)
    answer = await get(spy, "GET", "/api/v1/order/x")
    assert answer.headers["x-stamp"] == "1"
    assert spy.compiled == [True, False]


async def test_the_apps_own_exception_handlers_answer(make_app: Any) -> None:
    app, _ = make_app()
    from starlette.exceptions import HTTPException

    async def teapots(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"mine": exc.detail}, status_code=exc.status_code)

    app.add_exception_handler(418, teapots)
    spy = Spy(app)
    answer = await get(spy, "GET", "/api/v1/teapot")
    assert (answer.status_code, answer.json()) == (418, {"mine": "short and stout"})
    assert spy.compiled == [True]


async def test_off_serves_everything_through_fastapi(make_app: Any) -> None:
    app, container = make_app(server={"compiled_routes": False})
    spy = Spy(app)
    assert (await get(spy, "GET", "/api/v1/order/fixed")).json()["data"]["route"] == "templated"
    assert spy.compiled == [False]
    assert container.compiled_routes().count == 0
