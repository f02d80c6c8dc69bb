"""One trace across real services: `framex run` processes exporting over OTLP/HTTP to a
receiver on 127.0.0.1, a front service that sends work to a thread, a worker process
(or Ray tasks) and calls an upstream FrameX service through the proxy plugin."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.server import OutputDrain, Server, framex_server, require_ray
from tests.tracing.otlp_receiver import ReceivedSpan, Receiver, otlp_receiver

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
FORWARD_TRACE_ID = "1bf7651916cd43dd8448eb211c80319d"
RELAY_TRACE_ID = "2bf7651916cd43dd8448eb211c80319e"
SERVER_KIND, CLIENT_KIND = 2, 3  # OTLP's SpanKind numbers
ERROR_CODE = 2


def write_config(path: Path, document: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(document))
    return str(path)


def tracing(receiver: Receiver, service: str) -> dict[str, Any]:
    return {"enabled": True, "service_name": service, "endpoint": receiver.url, "exporter": "otlp"}


def stop(server: Server, output: OutputDrain) -> None:
    code = server.stop(signal.SIGTERM, timeout=120)
    assert code == 0, output.text()[-3000:]


def by_name(spans: list[ReceivedSpan], service: str) -> dict[str, ReceivedSpan]:
    return {s.name: s for s in spans if s.service == service}


def names(spans: list[ReceivedSpan], trace_id: str) -> set[tuple[str, str]]:
    return {(s.service, s.name) for s in spans if s.trace_id == trace_id}


FRONT_SPANS = {
    ("front", "GET /api/v1/front/all"),
    ("front", "remote in_thread"),
    ("front", "work in_thread"),
    ("front", "remote in_process"),
    ("front", "work in_process"),
    ("front", "call /api/v1/traced/batch"),
    ("front", "upstream GET /api/v1/traced/batch"),
}
UPSTREAM_SPANS = {
    ("upstream", "GET /api/v1/traced/batch"),
    ("upstream", "remote batched"),
    ("upstream", "work batched"),
}


def test_one_trace_from_the_http_span_to_threads_processes_and_an_upstream(tmp_path: Path) -> None:
    with otlp_receiver() as receiver:
        upstream_config = write_config(
            tmp_path / "upstream.yaml",
            {"load_plugins": ["tests.fixture_plugins.traced"], "tracing": tracing(receiver, "upstream")},
        )
        with framex_server("--config", upstream_config) as upstream:
            assert upstream.process.stdout is not None
            upstream_output = OutputDrain(upstream.process.stdout)
            front_config = write_config(
                tmp_path / "front.yaml",
                {
                    "load_plugins": ["tests.fixture_plugins.traced_front"],
                    "load_builtin_plugins": ["proxy"],
                    "plugins": {"proxy": {"upstreams": {upstream.url: {"enable": ["/api/v1/traced/*"]}}}},
                    "tracing": tracing(receiver, "front"),
                },
            )
            with framex_server("--config", front_config) as front:
                assert front.process.stdout is not None
                front_output = OutputDrain(front.process.stdout)
                headers = {"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01", "X-Request-ID": "e2e-1"}
                response = httpx.get(f"{front.url}/api/v1/front/all", headers=headers, timeout=60)
                assert response.status_code == 200, response.text
                assert response.json()["data"]["upstream"] == 42
                forwarded = httpx.get(
                    f"{front.url}/api/v1/traced/work/loop",
                    headers={"traceparent": f"00-{FORWARD_TRACE_ID}-{CALLER_SPAN}-01"},
                    timeout=60,
                )
                assert forwarded.status_code == 200, forwarded.text
                relayed = httpx.get(
                    f"{front.url}/api/v1/front/relay",
                    headers={"traceparent": f"00-{RELAY_TRACE_ID}-{CALLER_SPAN}-01"},
                    timeout=60,
                )
                assert relayed.status_code == 200, relayed.text
                assert len(relayed.json()["data"]) == 2
                spans = receiver.wait_for(
                    lambda s: (
                        names(s, TRACE_ID) >= FRONT_SPANS | UPSTREAM_SPANS
                        and ("upstream", "work on_loop") in names(s, FORWARD_TRACE_ID)
                        and names(s, RELAY_TRACE_ID) >= RELAY_SPANS
                    )
                )
                # The lines of the thread's and the worker process's work (read before the server stops).
                front_output.wait_for(rf"tests\.traced \[e2e-1 trace={TRACE_ID} span=", 2, timeout=30)
                stop(front, front_output)
            stop(upstream, upstream_output)

    assert names(spans, TRACE_ID) >= FRONT_SPANS | UPSTREAM_SPANS, sorted(names(spans, TRACE_ID))
    in_trace = [s for s in spans if s.trace_id == TRACE_ID]
    front, upstream = by_name(in_trace, "front"), by_name(in_trace, "upstream")
    http = front["GET /api/v1/front/all"]
    assert (http.parent_id, http.kind) == (CALLER_SPAN, SERVER_KIND)  # the caller's traceparent was honoured
    assert http.attributes["framex.request_id"] == "e2e-1"
    assert http.attributes["http.route"] == "/api/v1/front/all"
    assert http.attributes["http.response.status_code"] == 200
    for executor, function in (("thread", "in_thread"), ("process", "in_process")):
        call, work = front[f"remote {function}"], front[f"work {function}"]
        assert call.parent_id == http.span_id
        assert call.attributes["framex.executor"] == executor
        assert call.attributes["framex.backend"] == "local"
        assert work.parent_id == call.span_id
    assert front["work in_process"].attributes["framex.request_id"] == "e2e-1"
    plugin_call = front["call /api/v1/traced/batch"]
    client = front["upstream GET /api/v1/traced/batch"]
    assert plugin_call.parent_id == http.span_id
    assert (client.parent_id, client.kind) == (plugin_call.span_id, CLIENT_KIND)
    upstream_http = upstream["GET /api/v1/traced/batch"]
    assert upstream_http.parent_id == client.span_id  # the upstream continued the trace
    assert upstream["remote batched"].attributes["framex.batch_size"] == 4
    assert upstream["work batched"].parent_id == upstream["remote batched"].span_id

    forwarded_spans = [s for s in spans if s.trace_id == FORWARD_TRACE_ID]
    forward_client = next(s for s in forwarded_spans if s.service == "front" and s.kind == CLIENT_KIND)
    upstream_work_http = by_name(forwarded_spans, "upstream")["GET /api/v1/traced/work/{kind}"]
    assert upstream_work_http.parent_id == forward_client.span_id

    # The upstream's stream, read through `call_plugin_api`: the client span (and the call's)
    # lasts until the last event, which the upstream sent after its thread's work.
    relay_spans = [s for s in spans if s.trace_id == RELAY_TRACE_ID]
    relay_front, relay_upstream = by_name(relay_spans, "front"), by_name(relay_spans, "upstream")
    stream_client = relay_front["upstream GET /api/v1/traced/stream"]
    assert stream_client.parent_id == relay_front["call /api/v1/traced/stream"].span_id
    assert stream_client.end_time >= relay_upstream["work in_thread"].end_time
    assert relay_front["call /api/v1/traced/stream"].end_time >= stream_client.end_time

    # The worker process logged as the caller's request, in its trace.
    work_span = front["work in_process"].span_id
    line = f"INFO tests.traced [e2e-1 trace={TRACE_ID} span={work_span}]: working"
    assert line in front_output.text(), front_output.text()[-3000:]


RELAY_SPANS = {
    ("front", "GET /api/v1/front/relay"),
    ("front", "call /api/v1/traced/stream"),
    ("front", "upstream GET /api/v1/traced/stream"),
    ("upstream", "GET /api/v1/traced/stream"),
    ("upstream", "work in_thread"),
}


RAY_SPANS = {
    ("front", "GET /api/v1/front/all"),
    ("front", "remote in_thread"),
    ("front", "work in_thread"),
    ("front", "remote in_process"),
    ("front", "work in_process"),
    ("front", "call /api/v1/traced/batch"),
    ("front", "call traced_front.TracedHelper.add"),
    ("front", "serve traced_front.TracedHelper.add"),
}


@pytest.mark.ray
def test_one_trace_from_the_http_span_into_ray_tasks_and_an_upstream(tmp_path: Path) -> None:
    require_ray()
    with otlp_receiver() as receiver:
        upstream_config = write_config(
            tmp_path / "upstream.yaml",
            {"load_plugins": ["tests.fixture_plugins.traced"], "tracing": tracing(receiver, "upstream")},
        )
        with framex_server("--config", upstream_config) as upstream:
            assert upstream.process.stdout is not None
            upstream_output = OutputDrain(upstream.process.stdout)
            front_config = write_config(
                tmp_path / "front.yaml",
                {
                    "adapter": "ray",
                    "ray": {"num_cpus": 2},
                    "load_plugins": ["tests.fixture_plugins.traced_front"],
                    "load_builtin_plugins": ["proxy"],
                    "plugins": {"proxy": {"upstreams": {upstream.url: {"enable": ["/api/v1/traced/*"]}}}},
                    "tracing": tracing(receiver, "front"),
                },
            )
            # Ray folds log lines that differ only in ids into one ("repeated 2x"): keep each.
            with framex_server("--config", front_config, env={"RAY_DEDUP_LOGS": "0"}, ready_timeout=240) as front:
                assert front.process.stdout is not None
                front_output = OutputDrain(front.process.stdout)
                headers = {"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01", "X-Request-ID": "e2e-ray"}
                response = httpx.get(f"{front.url}/api/v1/front/all", headers=headers, timeout=120)
                assert response.status_code == 200, response.text
                # The plugin class's replica ran in the caller's trace and request.
                assert response.json()["data"]["class"] == {"sum": 2, "trace_id": TRACE_ID, "request_id": "e2e-ray"}
                # Ray forwards the tasks' log lines to the driver: they name the caller's request and trace.
                task_lines = front_output.wait_for(rf"tests\.traced \[e2e-ray trace={TRACE_ID} span=", 2, timeout=60)
                spans = receiver.wait_for(lambda s: names(s, TRACE_ID) >= RAY_SPANS | UPSTREAM_SPANS, timeout=120)
                stop(front, front_output)
            stop(upstream, upstream_output)

    assert names(spans, TRACE_ID) >= RAY_SPANS | UPSTREAM_SPANS, sorted(names(spans, TRACE_ID))
    front = by_name([s for s in spans if s.trace_id == TRACE_ID], "front")
    upstream = by_name([s for s in spans if s.trace_id == TRACE_ID], "upstream")
    http = front["GET /api/v1/front/all"]
    assert http.parent_id == CALLER_SPAN
    for function in ("in_thread", "in_process"):
        call, work = front[f"remote {function}"], front[f"work {function}"]
        assert call.parent_id == http.span_id
        assert (call.attributes["framex.backend"], call.attributes["framex.executor"]) == ("ray", "ray")
        assert (work.parent_id, work.attributes["framex.executor"]) == (call.span_id, "ray")
        assert work.attributes["framex.request_id"] == "e2e-ray"  # the Ray task knew the caller's request
    # The plugin class runs in a deployment of its own: its replica continued the trace.
    served = front["serve traced_front.TracedHelper.add"]
    assert served.parent_id == front["call traced_front.TracedHelper.add"].span_id
    assert served.attributes["framex.request_id"] == "e2e-ray"
    assert upstream["GET /api/v1/traced/batch"].parent_id == front["upstream GET /api/v1/traced/batch"].span_id
    assert len(task_lines) >= 2, front_output.text()[-3000:]
