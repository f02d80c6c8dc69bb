"""Real services for the proxy tests: a plain FastAPI upstream, a FrameX upstream, and a
FrameX service proxying both; all uvicorn on 127.0.0.1, for the whole module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.server import Server, framex_server, uvicorn_server

UPSTREAM_KEY = "upstream-key-5f1c"
"""The FrameX upstream's key for its guarded paths; the proxy sends it, clients never see it."""
CLIENT_KEY = "client-key-9a2e"
"""The proxying service's own key for one path: it must not travel upstream."""
FUNCTIONS = "tests.fixture_plugins.proxy_functions"


def write_config(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def proxy_settings(plain: str, framex: str, **extra: Any) -> dict[str, Any]:
    """``plugins.proxy`` for a service that proxies both upstreams."""
    return {
        "upstreams": {
            plain: {"enable": ["/api/v1/*"], "disable": ["/api/v1/private"], "openapi_path": "/openapi.json"},
            framex: {
                "enable": ["/api/v1/remote_*", "/api/v1/guarded"],
                "auth": {"/api/v1/guarded": UPSTREAM_KEY, "/api/v1/proxy/*": UPSTREAM_KEY},
            },
        },
        "timeout": 1.0,
        "max_body_in_memory": 1024,
        "proxy_functions": {framex: [f"{FUNCTIONS}.summarize", f"{FUNCTIONS}.raw_bytes", f"{FUNCTIONS}.explode"]},
        **extra,
    }


@pytest.fixture(scope="module")
def plain_upstream() -> Iterator[Server]:
    with uvicorn_server("tests.builtins.proxy.upstream_app:app") as server:
        yield server


@pytest.fixture(scope="module")
def framex_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = write_config(
        tmp_path_factory.mktemp("framex_upstream") / "config.yaml",
        {
            "load_builtin_plugins": ["proxy"],
            "load_plugins": ["tests.fixture_plugins.proxied"],
            "auth": {"rules": {"/api/v1/guarded": [UPSTREAM_KEY], "/api/v1/proxy/*": [UPSTREAM_KEY]}},
        },
    )
    with framex_server("--config", str(config), env={"PROXY_TEST_SERVICE": "upstream"}) as server:
        yield server


@pytest.fixture(scope="module")
def proxy_server(
    plain_upstream: Server, framex_upstream: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    config = write_config(
        tmp_path_factory.mktemp("proxy") / "config.yaml",
        {
            "load_builtin_plugins": ["proxy"],
            "load_plugins": ["tests.fixture_plugins.proxy_user"],
            "auth": {"rules": {"/api/v1/headers": [CLIENT_KEY]}},
            "plugins": {"proxy": proxy_settings(plain_upstream.url, framex_upstream.url)},
        },
    )
    with framex_server("--config", str(config), env={"PROXY_TEST_SERVICE": "proxy"}) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(proxy_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy_server.url, timeout=15) as client:
        yield client
