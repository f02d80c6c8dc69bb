"""`/docs` and `/redoc` served offline, and what the OpenAPI document says about plugins and
API keys. (tests/browser renders the pages in Chromium.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import framex
from framex.container import close_container

PLUGINS = ["plugins", "tests.fixture_plugins.console_probe"]


@pytest.fixture
def client() -> Iterator[TestClient]:
    container = framex.create_container(None, load_builtin_plugins=["echo"], load_plugins=PLUGINS)
    with TestClient(framex.create_app(container)) as test_client:
        yield test_client
    close_container(container)


def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def test_one_tag_per_plugin_in_load_order_as_its_author_describes_it(client: TestClient) -> None:
    tags = document(client)["tags"]
    assert [t["name"] for t in tags] == ["echo", "demo", "greeter", "console_probe", "service"]
    probe = tags[3]
    assert probe["description"] == "Shows itself on the console.\n\nVersion 3.1.4 · by Probe Team"
    assert probe["externalDocs"] == {
        "description": "console_probe documentation",
        "url": "https://example.invalid/console-probe",
    }
    assert probe["x-version"] == "3.1.4" and probe["x-author"] == "Probe Team"
    assert "externalDocs" not in tags[1]  # demo declares no URL
    assert tags[1]["description"].endswith("Version 1.0.0 · by FrameX")


def test_operations_without_a_plugin_have_a_tag_of_their_own(client: TestClient) -> None:
    paths = document(client)["paths"]
    for path in ("/health", "/ping", "/version", "/console/api/state"):
        assert paths[path]["get"]["tags"] == ["service"], path
    assert paths["/api/v1/console_probe/ok"]["get"]["tags"] == ["console_probe"]
    assert paths["/api/v1/demo/run"]["get"]["tags"] == ["demo"]


def test_no_api_key_scheme_without_rules(client: TestClient) -> None:
    doc = document(client)
    assert "securitySchemes" not in doc.get("components", {})
    assert all("security" not in op for item in doc["paths"].values() for op in item.values())


def test_the_api_key_scheme_covers_the_operations_a_rule_protects() -> None:
    rules = {"/api/v1/demo/*": ["demo-key"], "/version": ["version-key"], "/api/v1/echo": ["echo-key"]}
    container = framex.create_container(
        None, load_builtin_plugins=["echo"], load_plugins=PLUGINS, auth={"rules": {**rules}}
    )
    with TestClient(framex.create_app(container)) as client:
        doc = document(client)
    close_container(container)
    scheme = doc["components"]["securitySchemes"]["APIKey"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")
    secured = {
        (method, path)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if op.get("security") == [{"APIKey": []}]
    }
    demo = {(m, p) for p, item in doc["paths"].items() if p.startswith("/api/v1/demo/") for m in item}
    assert secured == demo | {("get", "/version"), ("get", "/api/v1/echo")}
    assert doc["paths"]["/api/v1/demo/run"]["get"]["responses"]["401"]["description"].startswith("No API key")
    assert "security" not in doc["paths"]["/health"]["get"]


def _local_urls(page: str) -> list[str]:
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""", page)
    return [a or b for a, b in urls]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_pages_load_only_what_the_service_serves(client: TestClient, page: str) -> None:
    html = client.get(page).text
    urls = _local_urls(html)
    assert urls, html
    for url in urls:
        if url.startswith("data:"):
            assert url.startswith("data:image/svg+xml;base64,")  # FrameX's favicon
            continue
        assert url.startswith("/"), url
        assert client.get(url).status_code == 200, url
    assert "fonts.googleapis" not in html and "cdn." not in html


def test_assets_are_served_with_their_types_and_unknown_ones_are_404(client: TestClient) -> None:
    js = client.get("/docs/assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "SwaggerUIBundle" in js.text[:2000]
    css = client.get("/docs/assets/swagger-ui.css")
    assert css.headers["content-type"].startswith("text/css") and "max-age" in css.headers["cache-control"]
    assert client.get("/docs/assets/redoc.standalone.js").status_code == 200
    assert client.get("/docs/assets/favicon.png").status_code == 404
    assert client.get("/docs/assets/..%2Fcore.py").status_code == 404


def test_mounted_under_a_prefix_the_pages_point_under_it() -> None:
    container = framex.create_container(None, load_builtin_plugins=["echo"], load_plugins=[])
    outer = FastAPI()
    outer.mount("/svc", framex.create_app(container))
    with TestClient(outer) as client:
        docs = client.get("/svc/docs").text
        assert "'/svc/api/v1/openapi.json'" in docs
        for url in _local_urls(docs):
            if not url.startswith("data:"):
                assert url.startswith("/svc/") and client.get(url).status_code == 200, url
        assert '"/svc/console/api/state"' in client.get("/svc/console").text
    close_container(container)
