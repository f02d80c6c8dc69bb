"""The proxy on Ray Serve: the ingress replica mirrors the upstreams and forwards to them,
with the metrics and the access log of the ingress (one `framex run --adapter ray`)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.builtins.proxy.conftest import proxy_settings, write_config
from tests.server import OutputDrain, Server, framex_server

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_proxy(
    plain_upstream: Server, framex_upstream: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, OutputDrain]]:
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed (pip install -e '.[ray]')")
    config = write_config(
        tmp_path_factory.mktemp("ray_proxy") / "config.yaml",
        {
            "adapter": "ray",
            "ray": {"num_cpus": 2},
            "load_builtin_plugins": ["proxy"],
            "load_plugins": ["tests.fixture_plugins.proxy_user"],
            "plugins": {"proxy": proxy_settings(plain_upstream.url, framex_upstream.url)},
            "metrics": {"enabled": True},
            "log": {"format": "json"},
        },
    )
    with framex_server("--config", str(config), env={"PROXY_TEST_SERVICE": "proxy"}, ready_timeout=240) as server:
        assert server.process.stdout is not None
        output = OutputDrain(server.process.stdout)
        with httpx.Client(base_url=server.url, timeout=60) as client:
            yield client, output
        assert server.stop(timeout=120) == 0, output.text()[-3000:]


def test_mirrored_routes_and_upstream_calls_work_on_ray(ray_proxy: tuple[httpx.Client, OutputDrain]) -> None:
    client, _ = ray_proxy
    assert client.get("/api/v1/items/5", params=[("tags", "a"), ("tags", "b")]).json() == {
        "item_id": 5,
        "tags": ["a", "b"],
        "q": None,
    }
    assert client.post("/api/v1/items", json={"name": "n", "price": 2}).status_code == 201
    assert client.get("/api/v1/user/greet", params={"name": "ray"}).json()["data"] == "hello ray hello ray"
    assert client.get("/api/v1/user/summarize").json()["data"]["served_by"] == "upstream"
    assert "/api/v1/items/{item_id}" in client.get("/api/v1/openapi.json").json()["paths"]


def test_the_ingress_counts_and_logs_proxied_requests(ray_proxy: tuple[httpx.Client, OutputDrain]) -> None:
    client, output = ray_proxy
    response = client.get("/api/v1/items/77", headers={"X-Request-ID": "ray-proxy-77"})
    assert response.status_code == 200
    metrics = client.get("/metrics").text
    assert 'route="/api/v1/items/{item_id}"' in metrics  # the template, not the path
    assert "/api/v1/items/77" not in metrics
    found = output.wait_for(r'"request_id": "ray-proxy-77"', 1)
    assert found, output.text()[-5000:]
    [line] = found
    record = json.loads(line.string[line.string.index("{") :])
    assert record["route"] == "/api/v1/items/{item_id}"
    assert record["status"] == 200
