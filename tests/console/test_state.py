"""The console's JSON (`/console/api/state`) on its own: what it lists, the figures it reads from
the metrics, the backend's pools, and the settings that move or switch it off."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

import framex
from framex.container import Container, close_container
from framex.errors import ConfigError
from tests.fixture_plugins import console_probe

PLUGINS = ["plugins", "tests.fixture_plugins.console_probe"]


def _container(**overrides: Any) -> Container:
    settings: dict[str, Any] = {"load_builtin_plugins": ["echo"], "load_plugins": PLUGINS, "local": {"max_workers": 4}}
    settings.update(overrides)
    return framex.create_container(None, **settings)


@pytest.fixture
def service() -> Iterator[TestClient]:
    container = _container(metrics={"enabled": True})
    with TestClient(framex.create_app(container), raise_server_exceptions=False) as client:
        yield client
    close_container(container)


def state(client: TestClient, **headers: str) -> dict[str, Any]:
    response = client.get("/console/api/state", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == 200 and body["message"] == "success"
    data: dict[str, Any] = body["data"]
    return data


def plugin(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in data["plugins"] if p["name"] == name)


def api(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for p in data["plugins"] for a in p["apis"] if a["name"] == name)


def remote_fn(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for p in data["plugins"] for f in p["remote_functions"] if f["name"] == name)


def metric(text: str, name: str, **labels: str) -> float:
    """One sample of the Prometheus text: the value of ``name`` with exactly these labels."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    found = re.search(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$", text, re.M)
    assert found is not None, f"no {name}{{{wanted}}} in the metrics"
    return float(found.group(1))


def test_lists_plugins_in_load_order_with_their_metadata_apis_and_remote_functions(service: TestClient) -> None:
    data = state(service)
    assert [p["name"] for p in data["plugins"]] == ["echo", "demo", "greeter", "console_probe"]
    probe = plugin(data, "console_probe")
    assert {k: probe[k] for k in ("version", "description", "author", "url", "module")} == {
        "version": "3.1.4",
        "description": "Shows itself on the console.",
        "author": "Probe Team",
        "url": "https://example.invalid/console-probe",
        "module": "tests.fixture_plugins.console_probe",
    }
    ok = api(data, "console_probe.ok")
    assert ok["path"] == "/api/v1/console_probe/ok" and ok["methods"] == ["GET"]
    assert ok["summary"] == "Answers at once, through a remote call."
    functions = {f["qualname"]: f for f in probe["remote_functions"]}
    assert set(functions) == {"hold", "fail", "Tools.double"}
    assert functions["hold"]["options"] == {"timeout": 30}
    assert functions["fail"]["options"] == {"retries": 1}
    assert functions["Tools.double"]["kind"] == "staticmethod"
    assert functions["hold"]["name"] == "tests.fixture_plugins.console_probe.hold"  # the metrics' label
    # A package plugin's remote functions live in its submodules.
    demo = {f["qualname"]: f["kind"] for f in plugin(data, "demo")["remote_functions"]}
    assert demo == {"heavy_job": "function", "Worker.total": "method", "Worker.scale": "classmethod"}
    # A function API has no HTTP path, so no HTTP figures.
    confess = api(data, "echo.EchoPlugin.confess")
    assert confess["path"] is None and confess["figures"] is None
    assert data["service"]["name"] == "FrameX" and data["service"]["framex_version"] == framex.VERSION
    assert data["service"]["adapter"] == "local"


def test_figures_are_the_counters_metrics_serves(service: TestClient) -> None:
    for x in range(6):
        assert service.get("/api/v1/console_probe/ok", params={"x": x}).status_code == 200
    assert service.get("/api/v1/console_probe/ok", params={"x": "nan"}).status_code == 422
    for _ in range(2):
        assert service.get("/api/v1/console_probe/fail").status_code == 500

    data = state(service)
    text = service.get("/metrics").text
    ok = api(data, "console_probe.ok")["figures"]
    served = sum(
        metric(text, "framex_http_requests_total", method="GET", route="/api/v1/console_probe/ok", status=status)
        for status in ("200", "422")
    )
    assert ok["requests"] == served == 7
    assert ok["client_errors"] == 1 and ok["errors"] == 0
    assert 0 < ok["p50_ms"] <= ok["p99_ms"]
    failing = api(data, "console_probe.failing")["figures"]
    assert failing["requests"] == failing["errors"] == 2

    label = "tests.fixture_plugins.console_probe.Tools.double"
    double = remote_fn(data, label)["figures"]
    counted = metric(text, "framex_remote_calls_total", function=label, backend="local", outcome="success")
    assert double["calls"] == counted
    assert double["calls"] == 6 and double["errors"] == 0 and double["p50_ms"] is not None
    fail = remote_fn(data, "tests.fixture_plugins.console_probe.fail")["figures"]
    assert fail["calls"] == fail["errors"] == 2  # retried inside one call: counted once
    # Routes of no plugin have figures of their own (a request is counted once it is answered).
    routes = {(r["method"], r["route"]): r["figures"] for r in state(service)["routes"]}
    assert routes[("GET", "/console/api/state")]["requests"] == 1
    assert routes[("GET", "/metrics")]["requests"] == 1


def test_in_flight_requests_and_thread_pool_use_while_a_call_is_held(service: TestClient) -> None:
    console_probe.gate.clear()
    answers: list[int] = []
    caller = threading.Thread(
        target=lambda: answers.append(service.get("/api/v1/console_probe/hold").status_code), daemon=True
    )
    caller.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            data = state(service)
            threads = data["backend"]["pools"]["threads"]
            if api(data, "console_probe.held")["figures"]["in_flight"] == 1 and threads and threads["busy"] >= 1:
                break
            assert time.monotonic() < deadline, data["backend"]
            time.sleep(0.02)
        assert threads["size"] == 4
        assert data["metrics"]["in_flight"] >= 2  # the held request and this one
    finally:
        console_probe.gate.set()
        caller.join(30)
    assert answers == [200]
    data = state(service)
    assert api(data, "console_probe.held")["figures"]["in_flight"] == 0
    assert api(data, "console_probe.held")["figures"]["requests"] == 1


def test_with_metrics_off_it_says_so_and_lists_what_is_loaded() -> None:
    container = _container()
    with TestClient(framex.create_app(container)) as client:
        client.get("/api/v1/console_probe/ok")
        data = state(client)
    close_container(container)
    assert data["metrics"]["enabled"] is False and data["metrics"]["in_flight"] is None
    assert [p["name"] for p in data["plugins"]] == ["echo", "demo", "greeter", "console_probe"]
    assert api(data, "console_probe.ok")["figures"] is None
    assert remote_fn(data, "tests.fixture_plugins.console_probe.hold")["figures"] is None
    assert data["routes"] == [] and data["history"]["age_s"] == []
    assert data["backend"]["name"] == "local"  # the pools are read from the executors, not counted


def test_the_page_is_one_offline_document_that_reads_the_json(service: TestClient) -> None:
    page = service.get("/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '"stateUrl": "/console/api/state"' in html
    assert "<script src" not in html and '<link rel="stylesheet"' not in html  # inlined: nothing else to fetch
    assert not re.search(r"""(src|href)=["']https?://""", html)
    assert 'rel="icon" href="data:image/svg+xml;base64,' in html


def test_console_off_and_moved() -> None:
    container = _container(console={"enabled": False})
    with TestClient(framex.create_app(container)) as client:
        assert client.get("/console").status_code == 404
        assert client.get("/console/api/state").status_code == 404
        assert "/console/api/state" not in client.get("/api/v1/openapi.json").json()["paths"]
    close_container(container)

    container = _container(console={"path": "/ops/console"})
    with TestClient(framex.create_app(container)) as client:
        assert client.get("/console").status_code == 404
        assert '"stateUrl": "/ops/console/api/state"' in client.get("/ops/console").text
        assert state_at(client, "/ops/console/api/state")["plugins"]
    close_container(container)


def state_at(client: TestClient, path: str) -> dict[str, Any]:
    response = client.get(path)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def test_a_console_path_a_plugin_serves_is_refused() -> None:
    container = _container(console={"path": "/api/v1/console_probe/ok"})
    with pytest.raises(ConfigError, match=r"`console.path`.*`/api/v1/console_probe/ok`.*a plugin API serves"):
        framex.create_app(container)
    close_container(container)


@pytest.mark.parametrize(
    ("path", "fix"),
    [("console", "must start with|starting with `/`"), ("/console/", "without a trailing `/`"), ("/c?x=1", "query")],
)
def test_console_path_is_validated(path: str, fix: str) -> None:
    with pytest.raises(ConfigError, match=rf"`console.path`.*({fix})"):
        framex.create_container(None, console={"path": path})


def test_the_json_is_a_path_like_any_other_for_auth_rules() -> None:
    container = _container(auth={"rules": {"/console/api/*": ["console-key"]}})
    with TestClient(framex.create_app(container)) as client:
        assert client.get("/console").status_code == 200  # the page holds no data
        refused = client.get("/console/api/state")
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
        assert state(client, Authorization="Bearer console-key")["plugins"]
    close_container(container)


def test_sparkline_points_are_the_latency_of_each_interval() -> None:
    container = _container(metrics={"enabled": True}, console={"interval_s": 60})
    console = container.console()  # the app's console: a singleton of the container
    with TestClient(framex.create_app(container)) as client:
        console.sample()  # the lifespan took the first sample; this one makes an interval without requests
        for _ in range(3):
            client.get("/api/v1/console_probe/ok")
        console.sample()
        data = state(client)
    close_container(container)
    figures = api(data, "console_probe.ok")["figures"]
    recent = figures["recent"]
    assert len(recent["count"]) == len(recent["p50_ms"]) == len(data["history"]["age_s"]) == 3
    assert recent["count"] == [0, 0, 3] and recent["p50_ms"][:2] == [None, None]
    assert 0 < recent["p50_ms"][-1] <= recent["p99_ms"][-1]
    assert data["history"]["age_s"] == sorted(data["history"]["age_s"], reverse=True)
    assert data["history"] | {"age_s": None} == {"interval_s": 60, "minutes": 10, "age_s": None}
