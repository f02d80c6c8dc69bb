"""Tracing settings, the provider's lifecycle, the missing-packages error, and trace ids in logs."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import framex
from framex.config import TracingSettings
from framex.container import Container, close_container
from framex.errors import ConfigError, FrameXError
from framex.http.tracing import TracingMiddleware
from framex.logs import JsonFormatter, RequestIdFilter, TextFormatter
from framex.tracing import Tracing
from tests.tracing.conftest import TRACED, Service, tracing_settings

LOG_LINE = "tests.traced"


@pytest.fixture
def plain_container() -> Iterator[Container]:
    container = framex.create_container(None, load_plugins=[TRACED], load_builtin_plugins=[])
    yield container
    close_container(container)


def test_tracing_is_off_by_default_and_adds_nothing(plain_container: Container) -> None:
    assert plain_container.settings().tracing == TracingSettings()
    assert plain_container.settings().tracing.enabled is False
    assert plain_container.tracing() is None
    observers = plain_container.call_observers()
    assert observers.tracing is None
    assert observers.idle  # `.remote()` keeps its shortest path
    app = framex.create_app(plain_container)
    assert all(m.cls is not TracingMiddleware for m in app.user_middleware)


def test_settings_are_validated_with_the_fix_named() -> None:
    with pytest.raises(ConfigError, match=r"`tracing.sample_ratio`: Input should be less than or equal to 1"):
        framex.create_container(None, tracing={"sample_ratio": 2})
    with pytest.raises(ConfigError, match=r"`tracing.endpoint`: .*http://127.0.0.1:4318/v1/traces"):
        framex.create_container(None, tracing={"endpoint": "collector:4318"})
    with pytest.raises(ConfigError, match=r"`tracing.exporter`"):
        framex.create_container(None, tracing={"exporter": "jaeger"})


def test_resource_attributes_and_service_name_reach_the_spans() -> None:
    exporter = InMemorySpanExporter()
    settings = TracingSettings.model_validate(
        {"enabled": True, "service_name": "orders", "resource_attributes": {"deployment.environment": "test"}}
    )
    tracing = Tracing(settings, exporter=exporter)
    with tracing.span("one"):
        pass
    tracing.shutdown()
    (span,) = exporter.get_finished_spans()
    assert span.resource.attributes["service.name"] == "orders"
    assert span.resource.attributes["deployment.environment"] == "test"


def test_a_sample_ratio_of_zero_records_no_new_trace_but_follows_a_sampled_caller() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing(TracingSettings(enabled=True, sample_ratio=0.0), exporter=exporter)
    with tracing.span("unsampled"):
        pass
    parent = tracing.extract({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    with tracing.span("sampled by the caller", parent=parent):
        pass
    tracing.shutdown()
    assert [s.name for s in exporter.get_finished_spans()] == ["sampled by the caller"]


def test_enabling_tracing_without_the_packages_is_a_clear_start_up_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # An entry of None in sys.modules makes its import fail, as if it were not installed.
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk", None)
    container = framex.create_container(None, load_builtin_plugins=[], tracing={"enabled": True})
    with pytest.raises(FrameXError, match=r"needs the OpenTelemetry packages.*pip install 'framex\[tracing\]'"):
        framex.create_app(container)


def test_the_otlp_exporter_missing_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(FrameXError, match=r"`tracing.exporter: otlp` needs the OTLP/HTTP exporter"):
        Tracing(TracingSettings(enabled=True))


def test_close_container_sends_the_waiting_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    container = framex.create_container(None, load_builtin_plugins=[], tracing=tracing_settings())
    tracing = container.tracing()
    assert isinstance(tracing, Tracing)
    closed: list[bool] = []
    monkeypatch.setattr(tracing.provider, "shutdown", lambda: closed.append(True))
    close_container(container)
    assert closed == [True]


def _handler(formatter: logging.Formatter) -> tuple[logging.Handler, io.StringIO]:
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    return handler, lines


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_records_carry_trace_and_span_ids_while_a_span_is_active(traced_service: Service, fmt: str) -> None:
    client, _, spans = traced_service
    handler, lines = _handler(JsonFormatter() if fmt == "json" else TextFormatter())
    logger = logging.getLogger(LOG_LINE)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        client.get("/api/v1/traced/work/thread", headers={"X-Request-ID": "order-9"})
        logger.info("outside any span")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    work = spans.named("work in_thread")
    assert work.context is not None
    trace_id, span_id = format(work.context.trace_id, "032x"), format(work.context.span_id, "016x")
    inside, outside = lines.getvalue().splitlines()
    if fmt == "json":
        doc = json.loads(inside)
        assert (doc["trace_id"], doc["span_id"], doc["request_id"]) == (trace_id, span_id, "order-9")
        assert "trace_id" not in json.loads(outside)
    else:
        assert inside == f"INFO tests.traced [order-9 trace={trace_id} span={span_id}]: working"
        assert outside == "INFO tests.traced: outside any span"


def test_traced_requests_answer_as_untraced_ones(traced_service: Service, plain_container: Container) -> None:
    client, _, _ = traced_service
    with TestClient(framex.create_app(plain_container)) as plain:
        for path in ("/api/v1/traced/work/thread", "/api/v1/traced/batch", "/health", "/nothing"):
            traced, untraced = client.get(path), plain.get(path)
            assert traced.status_code == untraced.status_code
            assert "traceparent" not in traced.headers


def test_process_work_knows_the_callers_request_with_tracing_off(plain_container: Container) -> None:
    with TestClient(framex.create_app(plain_container)) as client:
        data = client.get("/api/v1/traced/work/process", headers={"X-Request-ID": "order-11"}).json()["data"]
    assert data == {"trace_id": None, "request_id": "order-11"}
