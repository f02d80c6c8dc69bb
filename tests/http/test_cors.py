"""CORS: `server.cors`, served by Starlette's CORSMiddleware outside the auth middleware."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.middleware.cors import CORSMiddleware

from framex import create_app
from framex.config import load_settings
from framex.container import close_container, create_container, use_container
from framex.errors import ConfigError
from framex.http.auth import AuthMiddleware
from framex.http.limits import BodyLimitMiddleware
from tests.server import ROOT, framex_server

APP = "https://app.example.com"
EVIL = "https://evil.example.net"
KEY = "cors-key-41d9e0"

CONFIG = f"""\
load_builtin_plugins: [echo]
load_plugins: [plugins]
server:
  cors:
    allow_origins: ["{APP}", "http://localhost:5173"]
    allow_methods: [get, POST]
    allow_headers: [Authorization]
    expose_headers: [X-Request-ID]
    max_age: 120
auth:
  rules:
    "/api/v1/demo/*": [{KEY}]
"""


def write_config(folder: Path, text: str) -> Path:
    path = folder / "framex.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def framex_config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path, CONFIG)


def preflight(client: TestClient | httpx.Client, origin: str, method: str = "POST") -> httpx.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    return client.options("/api/v1/demo/total", headers=headers)


def check_preflights(client: TestClient | httpx.Client) -> None:
    # No key needed: CORS answers the preflight before auth sees it.
    allowed = preflight(client, APP)
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["access-control-allow-origin"] == APP
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert allowed.headers["access-control-max-age"] == "120"
    refused = preflight(client, EVIL)
    assert refused.status_code == 400 and refused.text == "Disallowed CORS origin"
    assert "access-control-allow-origin" not in refused.headers
    wrong_method = preflight(client, APP, method="DELETE")
    assert wrong_method.status_code == 400 and wrong_method.text == "Disallowed CORS method"


def test_preflight_allowed_and_refused(framex_client: TestClient) -> None:
    check_preflights(framex_client)


def test_simple_requests_from_allowed_origins_are_labelled(framex_client: TestClient) -> None:
    headers = {"Origin": APP, "Authorization": f"Bearer {KEY}"}
    response = framex_client.post("/api/v1/demo/total", json=[1, 2], headers=headers)
    assert response.status_code == 200 and response.json()["data"] == 3
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-expose-headers"] == "X-Request-ID"
    # Another origin gets its answer, without the header that lets its page read it.
    other = framex_client.get("/health", headers={"Origin": EVIL})
    assert other.text == "ok" and "access-control-allow-origin" not in other.headers
    # A request without `Origin` is not a cross-origin one.
    assert "access-control-allow-origin" not in framex_client.get("/health").headers


def test_401_is_readable_by_the_allowed_origin(framex_app: FastAPI, framex_client: TestClient) -> None:
    response = framex_client.post("/api/v1/demo/total", json=[1], headers={"Origin": APP})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == APP
    # Outermost first: only the body limit is inside auth, so every other middleware sees its 401s.
    order = [m.cls for m in framex_app.user_middleware if m.cls is not BodyLimitMiddleware]
    assert order[-1] is AuthMiddleware and order.index(CORSMiddleware) < order.index(AuthMiddleware)


def test_cors_is_off_by_default() -> None:
    container = create_container(ROOT / "tests" / "config.yaml")
    try:
        with use_container(container):
            app = create_app(container)
            assert container.settings().server.cors is None
            assert not any(m.cls is CORSMiddleware for m in app.user_middleware)
            with TestClient(app) as client:
                assert "access-control-allow-origin" not in client.get("/health", headers={"Origin": APP}).headers
    finally:
        close_container(container)


def test_methods_are_upper_cased(framex_config_path: Path) -> None:
    cors = load_settings(framex_config_path).server.cors
    assert cors is not None and cors.allow_methods == ["GET", "POST"]


@pytest.mark.parametrize(
    ("cors", "problem"),
    [
        (
            '{allow_origins: ["https://app.example.com/"]}',
            "`server.cors.allow_origins.0`: Value error, an origin is `*` or `scheme://host[:port]` without a path",
        ),
        ('{allow_origins: ["app.example.com"]}', "`server.cors.allow_origins.0`: Value error, an origin is"),
        ("{allow_origins: []}", "`server.cors.allow_origins`: List should have at least 1 item"),
        ("{allow_methods: [GET]}", "`server.cors.allow_origins`: Field required"),
        (
            '{allow_origins: ["*"], allow_credentials: true}',
            "`server.cors`: Value error, `allow_credentials: true` needs explicit `allow_origins`, not `*`",
        ),
        ("{allow_origins: ['*'], max_age: -1}", "`server.cors.max_age`: Input should be greater than or equal to 0"),
        ("{allow_origins: ['*'], allow_origin: x}", "`server.cors.allow_origin`: unknown key."),
    ],
)
def test_bad_cors_settings_are_config_errors(tmp_path: Path, cors: str, problem: str) -> None:
    path = write_config(tmp_path, f"server:\n  cors: {cors}\n")
    with pytest.raises(ConfigError, match=r"Invalid configuration in `.*framex\.yaml`:\n  - " + re.escape(problem)):
        load_settings(path)


def test_real_server_answers_preflights(framex_config_path: Path) -> None:
    with framex_server("--config", str(framex_config_path)) as server, httpx.Client(base_url=server.url) as client:
        check_preflights(client)
        labelled = client.get("/api/v1/demo/double_21", headers={"Origin": APP, "Authorization": KEY})
        assert labelled.json()["data"] == 42
        assert labelled.headers["access-control-allow-origin"] == APP
