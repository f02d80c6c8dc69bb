"""Which requests are recorded (framex/sampling.py and its use in framex/tracing.py and the
request paths): FrameX's draw at the root of a trace, and what an unsampled request carries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.context.context import Context
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, get_current_span, set_span_in_context

import framex
from framex.config import TracingSettings
from framex.container import close_container
from framex.sampling import UnsampledRoot, context_variable, draw, unsampled_context
from framex.tracing import SAMPLED_SCOPE_KEY, Tracing
from tests.tracing.conftest import TRACED, tracing_settings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def sampled_service(ratio: float, compiled: bool) -> Iterator[tuple[TestClient, InMemorySpanExporter]]:
    container = framex.create_container(
        None,
        load_plugins=[TRACED],
        load_builtin_plugins=[],
        tracing=tracing_settings(sample_ratio=ratio),
        server={"compiled_routes": compiled},
    )
    exporter = InMemorySpanExporter()
    container.tracing.override(Tracing(container.settings().tracing, exporter=exporter))
    try:
        with framex.use_container(container), TestClient(framex.create_app(container)) as client:
            yield client, exporter
    finally:
        close_container(container)


@pytest.fixture(params=[True, False], ids=["compiled", "fastapi-path"])
def half_sampled(request: pytest.FixtureRequest) -> Iterator[tuple[TestClient, InMemorySpanExporter]]:
    yield from sampled_service(0.5, request.param)


@pytest.fixture
def never_sampled() -> Iterator[tuple[TestClient, InMemorySpanExporter]]:
    yield from sampled_service(0.0, True)


def test_draw_is_the_ratio() -> None:
    assert draw(1.0) and not draw(0.0)
    hits = sum(draw(0.25) for _ in range(20_000))
    assert 4_400 < hits < 5_600  # 5,000 expected; 0.25 drawn twice would give about 1,250


def test_sample_ratio_is_drawn_once_per_request(half_sampled: tuple[TestClient, InMemorySpanExporter]) -> None:
    client, exporter = half_sampled
    requests = 400
    for _ in range(requests):
        assert client.get("/api/v1/traced/work/loop").status_code == 200
    spans = exporter.get_finished_spans()
    traces = {s.context.trace_id for s in spans if s.context is not None}
    http = [s for s in spans if s.kind is SpanKind.SERVER]
    # 200 expected (standard deviation 10); a ratio drawn twice would record about 100.
    assert 140 < len(http) < 260, len(http)
    assert len(traces) == len(http)  # each recorded request is one whole trace
    assert len(spans) == 3 * len(http)  # the request, the `.remote()` call, the work


def test_an_unsampled_request_carries_its_own_trace_id_to_threads_and_processes(
    never_sampled: tuple[TestClient, InMemorySpanExporter],
) -> None:
    client, exporter = never_sampled
    seen = [client.get(f"/api/v1/traced/work/{kind}").json()["data"] for kind in ("thread", "process", "process")]
    trace_ids = [data["trace_id"] for data in seen]
    assert None not in trace_ids
    assert len(set(trace_ids)) == 3  # one per request, drawn for it
    assert exporter.get_finished_spans() == ()


Client = tuple[TestClient, InMemorySpanExporter]


def test_a_garbled_traceparent_starts_a_trace_of_its_own(never_sampled: Client) -> None:
    client, exporter = never_sampled
    data = client.get("/api/v1/traced/work/thread", headers={"traceparent": "00-not-a-trace-01"}).json()["data"]
    assert data["trace_id"] is not None  # unsampled, as the ratio of 0 says
    sampled = client.get("/api/v1/traced/work/thread", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}).json()[
        "data"
    ]
    assert sampled["trace_id"] == TRACE_ID
    assert {s.name for s in exporter.get_finished_spans()} == {
        "GET /api/v1/traced/work/{kind}",
        "remote in_thread",
        "work in_thread",
    }


def test_unsampled_root_makes_its_ids_once_and_records_nothing() -> None:
    span = UnsampledRoot()
    context = span.get_span_context()
    assert context is span.get_span_context()
    assert context.is_valid and not context.trace_flags.sampled
    assert not span.is_recording()
    assert UnsampledRoot().get_span_context().trace_id != context.trace_id


def test_start_outside_a_request_draws_for_its_own_trace() -> None:
    exporter = InMemorySpanExporter()
    never = Tracing(TracingSettings(enabled=True, exporter="none", sample_ratio=0.0), exporter=exporter)
    always = Tracing(TracingSettings(enabled=True, exporter="none", sample_ratio=1.0), exporter=exporter)
    assert isinstance(never.start("root"), UnsampledRoot)
    assert not isinstance(never.start("root", sampled=True), UnsampledRoot)  # drawn before: recorded
    with always.span("recorded") as parent:
        assert parent.is_recording()
        with never.span("below a recorded parent") as child:
            assert child.is_recording()  # children follow their parent, whatever the ratio
    never.shutdown()
    always.shutdown()


def test_framex_sets_the_variable_the_opentelemetry_api_reads() -> None:
    # The fast path of an unsampled request sets this variable itself: it must be the API's.
    var = context_variable()
    assert var is not None
    token = var.set(unsampled_context())
    try:
        current = otel_context.get_current()
        span = get_current_span()
        assert isinstance(span, UnsampledRoot)
        assert current == set_span_in_context(span, Context())  # what attach(set_span_in_context(...)) makes
    finally:
        var.reset(token)
    assert otel_context.get_current() == Context()


def test_an_unsampled_request_is_current_until_it_ends_and_leaves_nothing_behind() -> None:
    tracing = Tracing(TracingSettings(enabled=True, exporter="none", sample_ratio=0.0))
    before = otel_context.get_current()
    scope: dict[str, Any] = {"headers": [(b"host", b"127.0.0.1")]}
    token = tracing.unsampled_request(scope)
    assert token is not None and SAMPLED_SCOPE_KEY not in scope
    assert isinstance(get_current_span(), UnsampledRoot) and tracing.unsampled()
    assert tracing.inject()["traceparent"].endswith("-00")  # travels on, not sampled
    tracing.end_unsampled_request(token)
    assert otel_context.get_current() == before
    traced = {"headers": [(b"traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01".encode())]}
    assert tracing.unsampled_request(traced) is None and SAMPLED_SCOPE_KEY not in traced  # the caller decided
    tracing.shutdown()


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_a_request_under_a_current_context_keeps_its_one_draw(ratio: float) -> None:
    # Baggage (or a span) current already: the request takes the middleware's path, whose
    # span start must reuse this draw instead of drawing again.
    exporter = InMemorySpanExporter()
    tracing = Tracing(TracingSettings(enabled=True, exporter="none", sample_ratio=ratio), exporter=exporter)
    scope: dict[str, Any] = {"headers": []}
    token = otel_context.attach(baggage.set_baggage("tenant", "a"))
    try:
        assert tracing.unsampled_request(scope) is None
        assert scope[SAMPLED_SCOPE_KEY] is (ratio == 1.0)
        flipped = Tracing(TracingSettings(enabled=True, exporter="none", sample_ratio=1.0 - ratio), exporter=exporter)
        span = flipped.start("GET", sampled=scope[SAMPLED_SCOPE_KEY])  # the other ratio would draw otherwise
        assert span.is_recording() is (ratio == 1.0)
        span.end()
        flipped.shutdown()
    finally:
        otel_context.detach(token)
    tracing.shutdown()


def test_unsampled_reads_the_current_span_as_the_api_does() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing(TracingSettings(enabled=True, exporter="none", sample_ratio=1.0), exporter=exporter)
    assert not tracing.unsampled()  # nothing current
    with tracing.span("recorded"):
        assert not tracing.unsampled()
    for flags, unsampled in (("00", True), ("01", False)):
        caller = tracing.extract({"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-{flags}"})
        assert caller is not None
        token = otel_context.attach(caller)
        try:
            assert tracing.unsampled() is unsampled
            assert get_current_span().get_span_context().trace_flags.sampled is not unsampled
        finally:
            otel_context.detach(token)
    token = otel_context.attach(set_span_in_context(UnsampledRoot()))
    try:
        assert tracing.unsampled()
    finally:
        otel_context.detach(token)
    tracing.shutdown()
