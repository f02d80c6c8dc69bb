"""The kit's proxy and request-cache behaviours, against real services on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import framex
from framex.container import close_container, create_container, use_container
from tests.kit.more import kit_cached
from tests.server import Server, uvicorn_server


@pytest.fixture(scope="module")
def upstream() -> Iterator[Server]:
    with uvicorn_server("tests.builtins.proxy.upstream_app:app") as server:
        yield server


def test_class_plugin_requiring_an_upstream_api_starts_and_calls_it(upstream: Server) -> None:
    # The class is created before the proxy has read the upstream's OpenAPI document.
    container = create_container(
        None,
        load_builtin_plugins=["proxy"],
        load_plugins=["tests.kit.more.kit_upstream_user"],
        plugins={"proxy": {"upstreams": {upstream.url: {"enable": ["/api/v1/*"], "openapi_path": "/openapi.json"}}}},
    )
    try:
        with use_container(container), TestClient(framex.create_app(container)) as client:
            assert client.get("/api/v1/kit/upstream").json()["data"] == "never mirrored"
    finally:
        close_container(container)


def test_kit_shaped_cache_key_builder() -> None:
    container = create_container(
        None, load_builtin_plugins=[], load_plugins=["tests.kit.more.kit_cached"], cache={"enabled": True}
    )
    try:
        with use_container(container), TestClient(framex.create_app(container)) as client:
            before = dict(kit_cached.calls)
            first = client.post("/api/v1/kit/report", params={"project_id": "p1", "note": "a"})
            second = client.post("/api/v1/kit/report", params={"project_id": "p1", "note": "b"})
            assert first.json()["data"] == second.json()["data"] == {"project_id": "p1"}
            assert second.headers["X-FrameX-Cache-Status"] == "HIT"
            assert second.headers["X-FrameX-Cache-Key"] == "/api/v1/kit/report:p1"
            assert client.get("/api/v1/kit/status").headers["X-FrameX-Cache-Status"] == "MISS"
            assert client.get("/api/v1/kit/status").headers["X-FrameX-Cache-Status"] == "HIT"
            assert kit_cached.calls["report"] - before["report"] == 1
            assert kit_cached.calls["status"] - before["status"] == 1
    finally:
        close_container(container)
