"""Metrics, request ids and the access log of the HTTP service (framex/http/observability.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import Mock

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import framex
from framex.container import Container, close_container
from framex.errors import ConfigError
from framex.http import observability
from framex.logs import RequestIdFilter
from framex.testing import RecordingAdapter
from tests.fixture_plugins import observed, slowpoke
from tests.server import framex_server

OBSERVED = "tests.fixture_plugins.observed"
SLOWPOKE = "tests.fixture_plugins.slowpoke"
ITEMS = "/api/v1/observed/items/{item_id}"
GENERATED_ID = re.compile(r"[0-9a-f]{32}")
KEY = "metrics-key-1"


@pytest.fixture
def framex_overrides() -> dict[str, Any]:
    return {"load_plugins": [OBSERVED], "load_builtin_plugins": [], "metrics": {"enabled": True}}


@pytest.fixture
def access_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="framex.access")
    return caplog


@contextmanager
def service(**overrides: Any) -> Iterator[tuple[TestClient, Container]]:
    """A client of a fresh app that loads the `observed` plugin, with ``overrides``; and its container."""
    settings: dict[str, Any] = {"load_plugins": [OBSERVED], "load_builtin_plugins": [], **overrides}
    container = framex.create_container(None, **settings)
    try:
        with TestClient(framex.create_app(container), raise_server_exceptions=False) as client:
            yield client, container
    finally:
        close_container(container)


@contextmanager
def serving(**overrides: Any) -> Iterator[TestClient]:
    """A client of a fresh app that loads the `observed` plugin, with ``overrides``."""
    with service(**overrides) as (client, _):
        yield client


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the series ``name{labels}`` in a scrape (None when absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


def label_sets(text: str, name: str) -> list[dict[str, str]]:
    return [s.labels for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "framex.access"]


def wait_for_access_records(caplog: pytest.LogCaptureFixture, count: int) -> list[logging.LogRecord]:
    """The access records once there are ``count`` (requests are recorded in passes while serving)."""
    deadline = time.monotonic() + 5
    while len(records := access_records(caplog)) < count and time.monotonic() < deadline:
        time.sleep(0.005)
    return records


# -- metrics ------------------------------------------------------------------------


def test_requests_are_counted_by_route_template(framex_client: TestClient) -> None:
    assert framex_client.get("/api/v1/observed/items/1").json()["data"] == 2
    assert framex_client.get("/api/v1/observed/items/2").json()["data"] == 4
    assert framex_client.get("/api/v1/nothing/here").status_code == 404
    response = framex_client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=")
    text = response.text
    # Two paths, one series; the raw paths never become labels.
    assert sample(text, "framex_http_requests_total", method="GET", route=ITEMS, status="200") == 2
    assert sample(text, "framex_http_request_duration_seconds_count", method="GET", route=ITEMS) == 2
    assert sample(text, "framex_http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    assert "/api/v1/observed/items/1" not in text and "/api/v1/nothing/here" not in text
    routes = {labels["route"] for labels in label_sets(text, "framex_http_requests_total")}
    assert routes == {ITEMS, "<unmatched>"}  # the scrape in progress is counted once it ends


async def test_in_flight_gauge_counts_requests_being_served(framex_app: FastAPI) -> None:
    observed.gates.update(entered=asyncio.Event(), release=asyncio.Event())
    transport = httpx.ASGITransport(app=framex_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        waiting = asyncio.ensure_future(client.get("/api/v1/observed/wait"))
        await observed.gates["entered"].wait()
        during = (await client.get("/metrics")).text
        observed.gates["release"].set()
        assert (await waiting).json()["data"] == "released"
        after = (await client.get("/metrics")).text
    assert sample(during, "framex_http_requests_in_flight") == 2  # the waiting request and the scrape
    assert sample(after, "framex_http_requests_in_flight") == 1  # the scrape itself


def test_remote_calls_are_counted_by_function_backend_and_outcome(framex_client: TestClient) -> None:
    assert framex_client.get("/api/v1/observed/items/3").status_code == 200
    assert framex_client.get("/api/v1/observed/broken").status_code == 500
    assert framex_client.get("/api/v1/observed/timeout").status_code == 500
    text = framex_client.get("/metrics").text

    def calls(function: str, outcome: str) -> float | None:
        name = f"{OBSERVED}.{function}"
        return sample(text, "framex_remote_calls_total", function=name, backend="local", outcome=outcome)

    assert (calls("double", "success"), calls("double", "error"), calls("double", "timeout")) == (1, 0, 0)
    assert (calls("broken", "success"), calls("broken", "error"), calls("broken", "timeout")) == (0, 1, 0)
    assert (calls("never_done", "success"), calls("never_done", "error"), calls("never_done", "timeout")) == (0, 0, 1)
    duration = "framex_remote_call_duration_seconds_count"
    assert sample(text, duration, function=f"{OBSERVED}.never_done", backend="local") == 1
    assert sample(text, "framex_http_requests_total", method="GET", route="/api/v1/observed/broken", status="500") == 1


def test_the_backend_label_is_the_adapter_serving_the_call(
    framex_client: TestClient, framex_adapter: RecordingAdapter
) -> None:
    assert framex_client.get("/api/v1/observed/items/5").json()["data"] == 10
    assert framex_adapter.names == ["double"]
    text = framex_client.get("/metrics").text
    labels = {"function": f"{OBSERVED}.double", "outcome": "success"}
    assert sample(text, "framex_remote_calls_total", backend="recording", **labels) == 1
    assert sample(text, "framex_remote_calls_total", backend="local", **labels) is None


async def test_a_map_fanned_out_by_the_adapter_counts_every_item(framex_container: Container) -> None:
    class FanOut(RecordingAdapter):
        async def call_many(self, fn: Any, calls: list[tuple[Any, ...]], return_exceptions: bool) -> list[Any]:
            results: list[Any] = []
            for args in calls:
                try:
                    results.append(await self.call(fn, args, {}))
                except Exception as exc:
                    if not return_exceptions:
                        raise
                    results.append(exc)
            return results

    framex.create_app(framex_container)  # metrics on: the container's call observer counts
    with framex_container.adapter.override(FanOut(name="fan-out")):
        assert await observed.double.map([1, 2, 3]) == [2, 4, 6]
        failed = await observed.broken.starmap([(), ()], return_exceptions=True)
        assert [type(e) for e in failed] == [ValueError, ValueError]
        with pytest.raises(ValueError, match="broken on purpose"):
            await observed.broken.starmap([()])
    text = framex_container.metrics().render().decode()

    def calls(function: str, outcome: str) -> float | None:
        name = f"{OBSERVED}.{function}"
        return sample(text, "framex_remote_calls_total", function=name, backend="fan-out", outcome=outcome)

    assert calls("double", "success") == 3
    assert calls("broken", "error") == 3 and calls("broken", "success") == 0


def test_metrics_are_off_by_default_and_remote_calls_unobserved() -> None:
    with service() as (client, container):
        assert client.get("/metrics").status_code == 404
        assert container.metrics() is None and container.call_observers().observer is None
        assert client.get("/api/v1/observed/items/1").json()["data"] == 2


@pytest.mark.usefixtures("frozen_gc")
def test_the_watchdog_counter_is_exposed() -> None:
    overrides = {"load_plugins": [OBSERVED, SLOWPOKE], "server__loop_block_warn_ms": slowpoke.WARN_MS}
    with service(metrics={"enabled": True}, **overrides) as (client, container):
        assert sample(client.get("/metrics").text, "framex_event_loop_blocked_total") == 0
        assert client.get("/api/v1/slowpoke/slow").json()["data"] == "done"  # blocks the loop for 1 s
        text = client.get("/metrics").text
        watchdog = container.watchdog()
    assert watchdog.blocked_events == 1
    assert sample(text, "framex_event_loop_blocked_total") == 1
    assert sample(text, "framex_event_loop_blocked_seconds_total") is not None


def test_no_watchdog_series_when_the_watchdog_is_off() -> None:
    with serving(metrics={"enabled": True}, server__loop_block_warn_ms=0) as client:
        assert label_sets(client.get("/metrics").text, "framex_event_loop_blocked_total") == []


def test_two_apps_in_one_process_keep_their_own_series() -> None:
    with serving(metrics={"enabled": True}) as first, serving(metrics={"enabled": True}) as second:
        first.get("/api/v1/observed/items/1")
        first.get("/api/v1/observed/items/2")
        second.get("/api/v1/observed/items/3")
        one, two = first.get("/metrics").text, second.get("/metrics").text
    labels = {"method": "GET", "route": ITEMS, "status": "200"}
    assert sample(one, "framex_http_requests_total", **labels) == 2
    assert sample(two, "framex_http_requests_total", **labels) == 1
    double = {"function": f"{OBSERVED}.double", "backend": "local", "outcome": "success"}
    assert sample(one, "framex_remote_calls_total", **double) == 2
    assert sample(two, "framex_remote_calls_total", **double) == 1
    assert not [m for m in REGISTRY.collect() if m.name.startswith("framex_")]  # the global registry is untouched


def test_metrics_path_is_configurable_and_auth_protects_it(access_log: pytest.LogCaptureFixture) -> None:
    with serving(metrics={"enabled": True, "path": "/internal/metrics"}, auth={"rules": {"/internal/*": [KEY]}}) as c:
        refused = c.get("/internal/metrics")
        assert refused.status_code == 401 and GENERATED_ID.fullmatch(refused.headers["X-Request-ID"])
        assert c.get("/metrics").status_code == 404
        text = c.get("/internal/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    # The 401 was answered before routing, by the auth middleware inside this one: still
    # counted and logged under its route.
    assert sample(text, "framex_http_requests_total", method="GET", route="/internal/metrics", status="401") == 1
    assert [(r.route, r.status) for r in access_records(access_log)][:2] == [  # type: ignore[attr-defined]
        ("/internal/metrics", 401),
        ("<unmatched>", 404),
    ]


def test_a_mounted_app_is_labelled_with_the_mount_and_its_route(
    framex_app: FastAPI, access_log: pytest.LogCaptureFixture
) -> None:
    async def show(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.path_params["name"])

    framex_app.mount("/sub", Starlette(routes=[Route("/files/{name}", show)]))
    with TestClient(framex_app) as client:
        assert client.get("/sub/files/a.txt").text == "a.txt"
        text = client.get("/metrics").text
    assert sample(text, "framex_http_requests_total", method="GET", route="/sub/files/{name}", status="200") == 1
    assert access_records(access_log)[0].route == "/sub/files/{name}"  # type: ignore[attr-defined]


def test_metrics_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"`metrics.path`: Value error, give a URL path starting with `/`"):
        framex.create_container(None, metrics={"enabled": True, "path": "metrics"})
    with pytest.raises(ConfigError, match=r"`metrics.enable`: unknown key. Accepted keys here: enabled, path"):
        framex.create_container(None, metrics={"enable": True})


# -- request ids --------------------------------------------------------------------


def test_a_safe_request_id_is_echoed(framex_client: TestClient) -> None:
    response = framex_client.get("/api/v1/observed/items/1", headers={"X-Request-ID": "trace-42:a.b_c"})
    assert response.headers.get_list("X-Request-ID") == ["trace-42:a.b_c"]


@pytest.mark.parametrize("given", [None, b"", b"has space", b"tab\tin", "é".encode(), b"x" * 129])
def test_a_missing_or_unsafe_request_id_is_replaced(framex_client: TestClient, given: bytes | None) -> None:
    headers = {"X-Request-ID": given} if given is not None else {}
    first = framex_client.get("/health", headers=headers).headers["X-Request-ID"]
    second = framex_client.get("/health", headers=headers).headers["X-Request-ID"]
    assert GENERATED_ID.fullmatch(first) and GENERATED_ID.fullmatch(second) and first != second


def test_every_response_carries_one_request_id(framex_client: TestClient) -> None:
    responses = {
        "ok": framex_client.get("/api/v1/observed/items/1"),
        "not found": framex_client.get("/nothing"),
        "wrong method": framex_client.delete("/health"),
        "invalid": framex_client.get("/api/v1/observed/items/not-a-number"),
        "plugin error": framex_client.get("/api/v1/observed/broken"),
        "metrics": framex_client.get("/metrics"),
        "docs": framex_client.get("/docs"),
    }
    for what, response in responses.items():
        ids = response.headers.get_list("X-Request-ID")
        assert len(ids) == 1 and GENERATED_ID.fullmatch(ids[0]), (what, response.headers)
    assert [r.status_code for r in responses.values()] == [200, 404, 405, 422, 500, 200, 200]
    error = responses["plugin error"]
    assert error.json()["request_id"] == error.headers["X-Request-ID"]


def test_an_unhandled_error_has_the_same_id_in_body_header_and_logs(
    framex_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    @framex_app.get("/explode")
    async def explode() -> None:
        raise RuntimeError("outside any plugin")

    caplog.set_level(logging.INFO)
    with TestClient(framex_app, raise_server_exceptions=False) as client:
        response = client.get("/explode", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.headers.get_list("X-Request-ID") == ["boom-1"] and response.json()["request_id"] == "boom-1"
    [access] = access_records(caplog)
    assert (access.status, access.route, access.request_id) == (500, "/explode", "boom-1")  # type: ignore[attr-defined]
    [error] = [r for r in caplog.records if r.name == "framex.http" and r.levelno == logging.ERROR]
    assert "boom-1" in error.getMessage()


def test_log_records_in_remote_thread_jobs_carry_the_request_id(framex_client: TestClient) -> None:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect()
    handler.addFilter(RequestIdFilter())
    observed.logger.addHandler(handler)
    observed.logger.setLevel(logging.INFO)
    try:
        framex_client.get("/api/v1/observed/items/21", headers={"X-Request-ID": "job-7"})
        generated = framex_client.get("/api/v1/observed/items/22").headers["X-Request-ID"]
    finally:
        observed.logger.removeHandler(handler)
        observed.logger.setLevel(logging.NOTSET)
    assert [(r.getMessage(), r.request_id) for r in records] == [  # type: ignore[attr-defined]
        ("doubling 21", "job-7"),
        ("doubling 22", generated),
    ]
    assert all(r.threadName.startswith("framex-remote") for r in records)


# -- the access log -----------------------------------------------------------------


def test_one_access_line_per_request_with_its_fields(
    framex_client: TestClient, access_log: pytest.LogCaptureFixture
) -> None:
    before = time.time()
    framex_client.get("/api/v1/observed/items/7?verbose=1", headers={"X-Request-ID": "line-1"})
    answered = time.time()
    framex_client.post("/api/v1/observed/items/7")
    # While serving: the pass after the requests writes them.
    first, second = wait_for_access_records(access_log, 2)
    # The time the request finished, not the time of the pass that wrote it.
    assert before <= first.created <= answered + 0.001
    assert re.fullmatch(r"GET /api/v1/observed/items/\{item_id\} 200 \d+\.\d\d ms", first.getMessage())
    fields = ("method", "route", "path", "status", "request_id", "client")
    assert {f: getattr(first, f) for f in fields} == {
        "method": "GET",
        "route": ITEMS,
        "path": "/api/v1/observed/items/7",
        "status": 200,
        "request_id": "line-1",
        "client": "testclient",
    }
    assert first.duration_ms > 0 and first.levelno == logging.INFO  # type: ignore[attr-defined]
    assert (second.method, second.route, second.status) == ("POST", ITEMS, 405)  # type: ignore[attr-defined]
    assert GENERATED_ID.fullmatch(second.request_id)  # type: ignore[attr-defined]


def test_requests_are_recorded_when_the_loop_of_the_planned_pass_is_gone(
    framex_app: FastAPI, access_log: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Outside `with`, a test client runs every request on an event loop of its own, which
    # closes with the pass planned on it: the next request finds the pass late (here at
    # once) and records what waits.
    monkeypatch.setattr(observability, "LOST_PASS", 0.0)
    client = TestClient(framex_app)
    assert client.get("/ping").text == "pong"
    assert client.get("/ping").text == "pong"
    assert [r.path for r in access_records(access_log)] == ["/ping", "/ping"]  # type: ignore[attr-defined]


def test_a_scrape_and_shutdown_record_what_waits_for_its_pass(
    access_log: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The planned pass comes long after the test: only the scrape and the shutdown record.
    monkeypatch.setattr(observability, "RECORD_INTERVAL", 3600.0)
    monkeypatch.setattr(observability, "LOST_PASS", 3600.0)
    with serving(metrics={"enabled": True}) as client:
        assert client.get("/ping").text == "pong"
        text = client.get("/metrics").text
        assert sample(text, "framex_http_requests_total", method="GET", route="/ping", status="200") == 1
        assert client.get("/health").text == "ok"
        assert [r.path for r in access_records(access_log)] == ["/ping"]  # type: ignore[attr-defined]
    paths = [r.path for r in access_records(access_log)]  # type: ignore[attr-defined]
    assert paths == ["/ping", "/metrics", "/health"]


def test_a_failing_pass_is_logged_and_the_next_one_records(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(observability, "RECORD_INTERVAL", 3600.0)
    monkeypatch.setattr(observability, "LOST_PASS", 3600.0)
    with service(metrics={"enabled": True}) as (client, container):
        metrics = container.metrics()
        observe = metrics.observe_request
        monkeypatch.setattr(metrics, "observe_request", Mock(side_effect=[RuntimeError("counter broke"), None]))
        assert client.get("/ping").text == "pong"
        assert client.get("/metrics").status_code == 200  # its pass fails on the /ping request
        [failure] = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert failure.getMessage() == "Recording finished requests failed (metrics, access log)"
        assert failure.exc_info is not None and str(failure.exc_info[1]) == "counter broke"
        monkeypatch.setattr(metrics, "observe_request", observe)
        text = client.get("/metrics").text
    # The failed request is lost, the next ones are counted; serving went on.
    assert sample(text, "framex_http_requests_total", method="GET", route="/ping", status="200") is None
    assert sample(text, "framex_http_requests_total", method="GET", route="/metrics", status="200") == 1


def test_excluded_paths_write_no_access_line(access_log: pytest.LogCaptureFixture) -> None:
    with serving(log={"exclude_paths": ["/health", "/metrics"]}) as client:
        assert client.get("/health").text == "ok"
        assert client.get("/ping").text == "pong"
    assert [r.path for r in access_records(access_log)] == ["/ping"]  # type: ignore[attr-defined]


def test_the_access_log_can_be_turned_off(access_log: pytest.LogCaptureFixture) -> None:
    with serving(log={"access_log": False}) as client:
        assert client.get("/ping").headers["X-Request-ID"]
    assert access_records(access_log) == []


def test_server_log_level_moved_to_log_level() -> None:
    with pytest.raises(ConfigError, match=r"`server.log_level`: this key moved to `log.level`; set that instead"):
        framex.create_container(None, server={"log_level": "debug"})
    with pytest.raises(ConfigError, match=r"`log.exclude_paths.0`: Value error, give a URL path starting with `/`"):
        framex.create_container(None, log={"exclude_paths": ["health"]})


# -- a real `framex run` ------------------------------------------------------------


def test_framex_run_writes_one_access_line_per_request() -> None:
    env = {"FRAMEX__LOG__EXCLUDE_PATHS": "[/health]"}  # the readiness polls
    with framex_server("--load-plugins", "plugins.demo", "--load-builtin-plugins", "echo", env=env) as server:
        response = httpx.get(f"{server.url}/api/v1/demo/run", params={"x": 21}, headers={"X-Request-ID": "run-1"})
        assert response.json()["data"] == 42 and response.headers["X-Request-ID"] == "run-1"
        assert httpx.get(f"{server.url}/api/v1/echo", params={"message": "hi"}).status_code == 200
        assert server.stop(signal.SIGTERM) == 0
        output = server.output()
    lines = [line for line in output.splitlines() if line.startswith("INFO framex.access")]
    assert len(lines) == 2, output
    assert re.fullmatch(r"INFO framex\.access \[run-1\]: GET /api/v1/demo/run 200 \d+\.\d\d ms", lines[0])
    assert re.fullmatch(r"INFO framex\.access \[[0-9a-f]{32}\]: GET /api/v1/echo 200 \d+\.\d\d ms", lines[1])
    assert "INFO uvicorn.error: Uvicorn running on" in output  # uvicorn's own lines, same format
    assert "HTTP/1.1" not in output  # and not its access log


def test_framex_run_writes_json_lines() -> None:
    env = {"FRAMEX__LOG__FORMAT": "json", "FRAMEX__LOG__EXCLUDE_PATHS": "[/health]"}
    with framex_server("--load-plugins", "plugins.demo", env=env) as server:
        httpx.get(f"{server.url}/api/v1/demo/run", params={"x": 1}, headers={"X-Request-ID": "json-1"})
        assert server.stop(signal.SIGTERM) == 0
        output = server.output()
    records = [json.loads(line) for line in output.splitlines()]  # every line is one JSON object
    [access] = [r for r in records if r["logger"] == "framex.access"]
    assert access["message"].startswith("GET /api/v1/demo/run 200 ")
    assert {k: access[k] for k in ("level", "request_id", "method", "route", "status")} == {
        "level": "INFO",
        "request_id": "json-1",
        "method": "GET",
        "route": "/api/v1/demo/run",
        "status": 200,
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", access["time"])
    assert any(r["logger"] == "uvicorn.error" and r["request_id"] is None for r in records)


async def test_a_request_cancelled_when_its_client_left_counts_as_499_not_500() -> None:
    # Ray Serve cancels the request of a client that went away (uvicorn's case is in test_serve.py).
    from framex.http.metrics import Metrics

    metrics = Metrics()
    records = observability.RequestRecords(metrics, access_log=False)
    started = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        started.set()
        await asyncio.Event().wait()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        raise AssertionError("nothing is sent")

    middleware = observability.ObservabilityMiddleware(app, records=records)
    scope = {"type": "http", "method": "GET", "path": "/slow", "headers": [], "root_path": ""}
    task = asyncio.ensure_future(middleware(scope, receive, send))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    text = metrics.render().decode()
    assert sample(text, "framex_http_requests_total", method="GET", route="<unmatched>", status="499") == 1
    assert 'status="500"' not in text
    assert sample(text, "framex_http_requests_in_flight") == 0
