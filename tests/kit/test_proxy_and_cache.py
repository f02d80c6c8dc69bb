"""The kit's proxy and request-cache behaviours, against real services on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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


def test_kit_proxy_config_mirrors_the_upstream(
    upstream: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kit's `[plugins.proxy.proxy_urls."<url>"]` form, read from config.toml.
    (tmp_path / "config.toml").write_text(
        'load_builtin_plugins = ["proxy"]\n[server]\nenable_proxy = true\n'
        f'[plugins.proxy.proxy_urls."{upstream.url}"]\n'
        'enable = ["/api/v1/*"]\ndisable = ["/api/v1/private"]\ndocs_path = "/openapi.json"\n'
    )
    monkeypatch.chdir(tmp_path)
    container = create_container(None)
    try:
        with use_container(container), TestClient(framex.create_app(container)) as client:
            assert client.get("/api/v1/items/3", params={"q": "x"}).json()["item_id"] == 3
            assert client.get("/api/v1/private").status_code == 404  # disabled
    finally:
        close_container(container)


def test_kit_auth_rules_answer_with_real_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The kit answers `{"status": 401, "message": "Invalid API Key(<key>) for API(...)"}`;
    # FrameX sends HTTP 401 and never repeats the key (docs/migrating.md).
    (tmp_path / "config.toml").write_text(
        'load_builtin_plugins = ["echo"]\n[auth]\nrules = { "/api/v1/echo" = ["i_am_general_auth_keys"] }\n'
    )
    monkeypatch.chdir(tmp_path)
    container = create_container(None)
    try:
        with use_container(container), TestClient(framex.create_app(container)) as client:
            params = {"message": "hello world"}
            good = client.get("/api/v1/echo", params=params, headers={"Authorization": "i_am_general_auth_keys"})
            assert good.json()["data"] == "hello world"
            missing = client.get("/api/v1/echo", params=params)
            wrong = client.get("/api/v1/echo", params=params, headers={"Authorization": "error_key"})
            assert missing.status_code == wrong.status_code == 401
            assert wrong.json()["status"] == 401 and "error_key" not in wrong.text
    finally:
        close_container(container)
