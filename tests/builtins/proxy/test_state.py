"""Start-up of the proxy: upstreams that are down, come back or go away; required APIs."""

from __future__ import annotations

import logging
import time

import pytest
from fastapi.testclient import TestClient

from framex.container import Container, close_container, create_container, use_container
from framex.errors import ApiNotFoundError, FrameXError
from tests.server import free_port, uvicorn_server

PLAIN_APP = "tests.builtins.proxy.upstream_app:app"


def _container(url: str, **settings: object) -> Container:
    proxy = {"upstreams": {url: {"openapi_path": "/openapi.json"}}, "timeout": 5.0, **settings}
    return create_container(load_builtin_plugins=["proxy"], load_plugins=[], plugins={"proxy": proxy})


def _poll_status(client: TestClient, path: str, want: int, deadline_s: float = 30) -> int:
    deadline = time.monotonic() + deadline_s
    status = client.get(path).status_code
    while status != want and time.monotonic() < deadline:
        time.sleep(0.05)
        status = client.get(path).status_code
    return status


def test_an_upstream_down_at_start_is_retried_until_it_answers(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    container = _container(f"http://127.0.0.1:{port}", startup_retries=1, retry_interval=0.05, max_retry_interval=0.2)
    with caplog.at_level(logging.WARNING, "framex.proxy"), TestClient(container.app()) as client:
        assert client.get("/health").text == "ok"  # the service started without it
        assert client.get("/api/v1/items/1").status_code == 404
        [warning] = [r for r in caplog.records if r.name == "framex.proxy"]
        assert f"upstream http://127.0.0.1:{port} is unreachable" in warning.getMessage()
        assert "Retrying in the background" in warning.getMessage()
        with uvicorn_server(PLAIN_APP, port=port):
            assert _poll_status(client, "/api/v1/items/1", 200) == 200
            assert "/api/v1/items/{item_id}" in client.get("/api/v1/openapi.json").json()["paths"]
    close_container(container)


def test_an_upstream_gone_while_serving_is_a_502_and_the_service_stays_up() -> None:
    with uvicorn_server(PLAIN_APP) as upstream:
        container = _container(upstream.url)
        with TestClient(container.app()) as client:
            assert client.get("/api/v1/items/1").status_code == 200
            upstream.stop()
            response = client.get("/api/v1/items/1")
            assert response.status_code == 502
            assert response.json()["message"] == "Bad gateway: the upstream service is unreachable."
            assert client.get("/health").text == "ok"
    close_container(container)


async def test_a_required_api_no_upstream_serves_stops_the_start() -> None:
    with uvicorn_server(PLAIN_APP) as upstream:
        container = _container(upstream.url)
        with use_container(container):
            runtime = container.runtime()
            runtime.registry.load_configured()
            runtime.registry.load("tests.fixture_plugins.proxy_user")
            with pytest.raises(ApiNotFoundError) as failed:
                await runtime.start()
            await runtime.stop()
    message = str(failed.value)
    assert "Plugin `proxy_user` requires API `/api/v1/remote_greet`" in message
    assert "no API found by `proxy` serves it" in message


def test_without_the_proxy_a_missing_api_fails_at_load() -> None:
    container = create_container(load_builtin_plugins=[], load_plugins=["tests.fixture_plugins.proxy_user"])
    with pytest.raises(ApiNotFoundError, match="requires API `/api/v1/remote_greet`"):
        container.app()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"upstreams": {"ftp://host": {}}}, "must be an http:// or https:// URL"),
        ({"upstreams": {"http://h": {"enable": ["api/*"]}}}, "must start with `/`"),
        ({"upstreams": {"http://h": {"enabled": []}}}, "enabled"),
        ({"timeout": 0}, "timeout"),
        ({"proxy_functions": {"http://a": ["m.f"], "http://b": ["m.f"]}}, "listed under both"),
    ],
)
def test_bad_settings_name_what_is_wrong(settings: dict[str, object], message: str) -> None:
    container = create_container(load_builtin_plugins=["proxy"], load_plugins=[], plugins={"proxy": settings})
    with pytest.raises(FrameXError, match=message) as failed:
        container.registry().load_configured()
    assert "proxy" in str(failed.value)


def test_force_stream_apis_are_passed_on_as_they_come() -> None:
    with uvicorn_server(PLAIN_APP) as upstream:
        container = _container(upstream.url, force_stream_apis=["/api/v1/items/*"])
        with TestClient(container.app()) as client:
            streamed = client.get("/api/v1/items/1")
            whole = client.post("/api/v1/items", json={"name": "n", "price": 1})
        close_container(container)
    assert streamed.json() == {"item_id": 1, "tags": [], "q": None}
    assert "content-length" not in streamed.headers  # sent in chunks as read, not measured first
    assert whole.headers["content-length"] == str(len(whole.content))
