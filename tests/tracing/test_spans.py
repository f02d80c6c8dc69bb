"""The spans FrameX makes (framex/tracing.py, framex/http/tracing.py, the `.remote()` paths),
read from an in-memory exporter."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import framex
from framex.container import close_container
from framex.tracing import Tracing
from tests.tracing.conftest import TRACED, Service, tracing_settings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def hex_trace(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def test_the_http_span_holds_route_status_and_request_id(traced_service: Service) -> None:
    client, _, spans = traced_service
    response = client.get("/api/v1/traced/work/loop", headers={"X-Request-ID": "order-42"})
    assert response.status_code == 200
    http = spans.named("GET /api/v1/traced/work/{kind}")
    assert http.kind is SpanKind.SERVER
    assert http.attributes is not None
    assert http.attributes["http.route"] == "/api/v1/traced/work/{kind}"
    assert http.attributes["http.response.status_code"] == 200
    assert http.attributes["framex.request_id"] == "order-42"
    assert http.attributes["url.path"] == "/api/v1/traced/work/loop"
    assert http.status.status_code is StatusCode.UNSET


def test_an_incoming_traceparent_is_honoured(traced_service: Service) -> None:
    client, _, spans = traced_service
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    response = client.get("/api/v1/traced/work/thread", headers={"traceparent": traceparent})
    http = spans.named("GET /api/v1/traced/work/{kind}")
    assert hex_trace(http) == TRACE_ID
    assert parent_of(http) == int(PARENT_ID, 16)
    assert response.json()["data"]["trace_id"] == TRACE_ID  # the thread ran in the caller's trace


@pytest.mark.parametrize(("kind", "executor"), [("thread", "thread"), ("loop", "loop")])
def test_remote_calls_have_a_span_and_a_work_span_in_the_callers_trace(
    traced_service: Service, kind: str, executor: str
) -> None:
    client, _, spans = traced_service
    data = client.get(f"/api/v1/traced/work/{kind}").json()["data"]
    function = "in_thread" if kind == "thread" else "on_loop"
    http = spans.named("GET /api/v1/traced/work/{kind}")
    call = spans.named(f"remote {function}")
    work = spans.named(f"work {function}")
    assert call.attributes == {
        "framex.function": function,
        "framex.backend": "local",
        "framex.executor": executor,
    }
    assert work.attributes is not None and work.attributes["framex.executor"] == executor
    assert parent_of(call) == span_id(http)
    assert parent_of(work) == span_id(call)
    assert {hex_trace(http), hex_trace(call), hex_trace(work)} == {data["trace_id"]}
    assert data["request_id"] is not None


def test_process_work_runs_in_the_callers_trace_and_request(traced_service: Service) -> None:
    client, _, spans = traced_service
    response = client.get("/api/v1/traced/work/process", headers={"X-Request-ID": "order-7"})
    data = response.json()["data"]
    call = spans.named("remote in_process")
    assert call.attributes is not None and call.attributes["framex.executor"] == "process"
    # The worker process's own spans go to its exporter (none here); what it saw is its
    # current span's trace: the caller's.
    assert data == {"trace_id": hex_trace(call), "request_id": "order-7"}


def test_batched_calls_say_their_batch_size(traced_service: Service) -> None:
    client, _, spans = traced_service
    assert client.get("/api/v1/traced/batch").json()["data"] == 42
    call = spans.named("remote batched")
    assert call.attributes is not None and call.attributes["framex.batch_size"] == 4
    work = spans.named("work batched")
    assert parent_of(work) == span_id(call)


def test_plugin_api_calls_have_a_span(traced_service: Service) -> None:
    client, _, spans = traced_service
    assert client.get("/api/v1/traced/calls").json()["data"] == 2
    call = spans.named("call traced.helper")
    assert call.attributes == {"framex.api": "traced.helper", "framex.plugin": "traced"}
    assert parent_of(call) == span_id(spans.named("GET /api/v1/traced/calls"))


def test_errors_mark_spans_with_the_exception_type_only(traced_service: Service) -> None:
    client, _, spans = traced_service
    response = client.get("/api/v1/traced/broken")
    assert response.status_code == 500
    http = spans.named("GET /api/v1/traced/broken")
    call = spans.named("remote broken")
    work = spans.named("work broken")
    for span in (http, call, work):
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "ValueError"
        assert span.attributes is not None and span.attributes["error.type"] == "ValueError"
    for span in spans.all():
        assert "secret" not in repr(span.to_json())


def test_a_streaming_response_ends_its_span_when_the_stream_ends(traced_service: Service) -> None:
    client, _, spans = traced_service
    with client.stream("GET", "/api/v1/traced/stream") as response:
        events = [line for line in response.iter_lines() if line.startswith("data:")]
    assert len(events) == 2
    http = spans.named("GET /api/v1/traced/stream")
    work = spans.named("work in_thread")  # made while the stream was being sent
    assert hex_trace(work) == hex_trace(http)
    assert http.end_time is not None and work.end_time is not None
    assert http.end_time >= work.end_time
    assert http.attributes is not None and http.attributes["http.response.status_code"] == 200


def test_a_stream_read_through_call_plugin_api_keeps_its_call_span_until_it_ends(traced_service: Service) -> None:
    client, _, spans = traced_service
    data = client.get("/api/v1/traced/relay").json()["data"]
    assert data[0] == {"step": 1}
    call = spans.named("call traced.stream")
    remote = spans.named("remote in_thread")
    work = spans.named("work in_thread")
    assert parent_of(call) == span_id(spans.named("GET /api/v1/traced/relay"))
    assert parent_of(remote) == span_id(call)  # made by the stream after its first item, inside its call
    assert call.end_time is not None and work.end_time is not None
    assert call.end_time >= work.end_time


def test_unmatched_paths_are_named_without_their_raw_path(traced_service: Service) -> None:
    client, _, spans = traced_service
    assert client.get("/no/such/path/123").status_code == 404
    (http,) = spans.all()
    assert http.name == "GET <unmatched>"
    assert http.attributes is not None and http.attributes["http.response.status_code"] == 404


def test_an_unsampled_request_makes_no_spans_down_the_line() -> None:
    container = framex.create_container(
        None, load_plugins=[TRACED], load_builtin_plugins=[], tracing=tracing_settings(sample_ratio=0.0)
    )
    exporter = InMemorySpanExporter()
    container.tracing.override(Tracing(container.settings().tracing, exporter=exporter))
    try:
        with TestClient(framex.create_app(container)) as client:
            data = client.get("/api/v1/traced/work/thread").json()["data"]
            sampled = client.get(
                "/api/v1/traced/work/thread", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
            ).json()["data"]
    finally:
        close_container(container)
    # The unsampled request still has a trace id (it travels on, unsampled); nothing is exported.
    assert data["trace_id"] is not None and data["trace_id"] != TRACE_ID
    assert sampled["trace_id"] == TRACE_ID  # a sampled caller wins over the ratio
    assert {hex_trace(s) for s in exporter.get_finished_spans()} == {TRACE_ID}
    assert len(exporter.get_finished_spans()) == 3  # the request, the call, the work


def test_a_remote_stream_has_one_span_current_while_it_produces_and_ended_with_it(traced_service: Service) -> None:
    client, _, spans = traced_service
    items = client.get("/api/v1/traced/counted?n=3").json()["data"]
    http = spans.named("GET /api/v1/traced/counted")
    remote = spans.named("remote counted")
    assert [item["i"] for item in items] == [0, 1, 2]
    assert {item["trace_id"] for item in items} == {hex_trace(http)}
    assert remote.context is not None
    assert {item["span_id"] for item in items} == {format(remote.context.span_id, "016x")}  # current while producing
    assert parent_of(remote) == span_id(http)
    assert remote.attributes is not None and remote.attributes["framex.function"] == "counted"
    assert remote.end_time is not None and http.end_time is not None and remote.end_time <= http.end_time
    assert [s.name for s in spans.all()].count("remote counted") == 1
