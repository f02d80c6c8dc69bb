from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from framex.consts import VERSION
from framex.container import Container
from tests.fixture_plugins.kitchen import SECRET


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == 200 and body["message"] == "success"
    assert "T" in body["timestamp"]
    return body["data"]


def test_service_routes(client: httpx.Client) -> None:
    assert client.get("/health").text == "ok"
    assert client.get("/ping").text == "pong"
    info = ok(client.get("/version"))
    assert info["version"] == VERSION
    assert info["adapter"] == client.headers.get("x-test-backend", "local")
    assert info["plugins"]["kitchen"] == "2.3.4"
    assert client.get("/docs").status_code == 200
    assert client.get("/redoc").status_code == 200


def test_seed_demo_routes(client: httpx.Client) -> None:
    assert ok(client.get("/api/v1/demo/run", params={"x": 21})) == 42
    assert ok(client.get("/api/v1/demo/double_21")) == 42
    assert ok(client.post("/api/v1/demo/total", json=[1, 2, 3])) == 6
    assert ok(client.get("/api/v1/demo/scale", params={"x": 2})) == 20


def test_defaults_are_kept(client: httpx.Client) -> None:
    assert ok(client.get("/api/v1/kitchen/defaults")) == {"name": "chef", "count": 3, "hot": True}
    got = ok(client.get("/api/v1/kitchen/defaults", params={"count": 7, "hot": "false"}))
    assert got == {"name": "chef", "count": 7, "hot": False}


def test_sync_handler_runs_off_the_loop(client: httpx.Client) -> None:
    # The client keeps one loop (one thread) for all its requests, so the two answers compare.
    loop = ok(client.get("/api/v1/kitchen/loop_thread"))
    data = ok(client.get("/api/v1/kitchen/sync", params={"x": 3}))
    assert data["x"] == 3
    assert data["pid"] == loop["pid"] and data["thread"] != loop["thread"]


def test_body_model_and_query_together(client: httpx.Client) -> None:
    data = ok(client.post("/api/v1/kitchen/order", params={"note": "!"}, json={"item": "tea", "quantity": 2}))
    assert data == {"item": "tea!", "quantity": 4}


def test_validation_error_is_422_with_details(client: httpx.Client) -> None:
    response = client.post("/api/v1/kitchen/order", json={"item": "", "quantity": 0})
    assert response.status_code == 422
    body = response.json()
    assert body["status"] == 422 and body["message"].startswith("Invalid request: `body.item`")
    assert {tuple(e["loc"]) for e in body["data"]} == {("body", "item"), ("body", "quantity")}
    missing = client.get("/api/v1/demo/run")
    assert missing.status_code == 422 and missing.json()["data"][0]["loc"] == ["query", "x"]
    bad_json = client.post("/api/v1/kitchen/order", content=b"{not json", headers={"content-type": "application/json"})
    assert bad_json.status_code == 422


def test_unknown_route_and_method(client: httpx.Client) -> None:
    missing = client.get("/api/v1/nothing")
    assert missing.status_code == 404 and missing.json()["status"] == 404
    wrong = client.delete("/api/v1/demo/run")
    assert wrong.status_code == 405 and wrong.json()["message"] == "Method Not Allowed"


def test_http_exception_keeps_its_status(client: httpx.Client) -> None:
    response = client.get("/api/v1/kitchen/teapot")
    assert response.status_code == 418
    assert response.json()["message"] == "I'm a teapot"


def test_500_is_logged_with_the_request_id(framex_client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="framex.http"):
        response = framex_client.get("/api/v1/kitchen/boom", headers={"X-Request-ID": "trace-77"})
    assert response.status_code == 500
    assert "trace-77" in caplog.text and SECRET in caplog.text  # the operator gets the details


def test_500_hides_exception_text_and_gives_request_id(client: httpx.Client) -> None:
    response = client.get("/api/v1/kitchen/boom", headers={"X-Request-ID": "trace-123"})
    assert response.status_code == 500
    assert SECRET not in response.text and "RuntimeError" not in response.text
    body = response.json()
    assert body["status"] == 500 and body["request_id"] == "trace-123"
    assert response.headers["X-Request-ID"] == "trace-123"
    # An unusable client id (log injection) is replaced by a generated one.
    generated = client.get("/api/v1/kitchen/boom", headers={"X-Request-ID": "bad\tid"})
    assert generated.json()["request_id"] != "bad\tid" and len(generated.json()["request_id"]) == 32
    # The service keeps serving.
    assert client.get("/health").text == "ok"


def test_raw_response(client: httpx.Client) -> None:
    assert client.get("/api/v1/kitchen/raw", params={"value": 5}).json() == {"value": 5}


def test_sse_stream(client: httpx.Client) -> None:
    response = client.get("/api/v1/kitchen/stream", params={"n": 3})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text == 'data: {"i":0}\n\ndata: {"i":1}\n\ndata: {"i":2}\n\n'


def test_sse_from_sync_generator_passes_ready_events(client: httpx.Client) -> None:
    response = client.get("/api/v1/kitchen/sync_stream")
    assert response.text == "event: tick\ndata: 0\n\nevent: tick\ndata: 1\n\n"


def test_sse_error_mid_stream_ends_with_error_event(client: httpx.Client) -> None:
    response = client.get("/api/v1/kitchen/broken_stream")
    assert response.text.startswith("data: 1\n\nevent: error\ndata: ")
    assert SECRET not in response.text and '"status":500' in response.text


def test_echo_stream_and_greeter(client: httpx.Client) -> None:
    events = client.get("/api/v1/echo_stream", params={"message": "ab"}).text
    # FrameX-kit's echo events: a prefix and the message, one character per chunk, then `finish`.
    text = "This message is being streamed., ab"
    chunks = "".join(f'event: message_chunk\ndata: {{"content": "{c}"}}\n\n' for c in text)
    assert events == chunks + "event: finish\ndata: {}\n\n"
    for endless in ("inf", "nan", "-1", "11"):  # a delay that would hold the connection (nearly) forever
        assert client.get("/api/v1/echo_stream", params={"message": "ab", "delay": endless}).status_code == 422
    assert ok(client.get("/api/v1/greeter/hello", params={"name": "ann"})) == "Hi, ann!"
    assert ok(client.get("/api/v1/greeter/hello", params={"name": "ann", "loud": True})) == "HI, ANN!"
    assert ok(client.get("/api/v1/greeter/double", params={"x": 4})) == {"x": 4, "doubled": 8}
    stream = client.get("/api/v1/greeter/stream", params={"name": "bo"}).text
    assert stream == 'data: {"word":"Hi"}\n\ndata: {"word":"bo!"}\n\n'
    assert client.get("/api/v1/greeter/ready").json() == {"sample": "ready"}


def test_module_level_handler_with_two_methods(client: httpx.Client) -> None:
    assert ok(client.get("/api/v1/kitchen/module_level", params={"word": "x"})) == "xx"
    assert ok(client.post("/api/v1/kitchen/module_level")) == "hihi"


def test_function_only_api_has_no_route(client: httpx.Client) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert not any("add" in p for p in paths)
    assert "/api/v1/kitchen/both" in paths


def test_openapi_has_real_parameters_and_bodies(client: httpx.Client) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    defaults = spec["paths"]["/api/v1/kitchen/defaults"]["get"]
    params = {p["name"]: p for p in defaults["parameters"]}
    assert set(params) == {"name", "count", "hot"}
    assert params["count"]["schema"] == {"type": "integer", "default": 3, "title": "Count"}
    assert defaults["tags"] == ["kitchen"]
    order = spec["paths"]["/api/v1/kitchen/order"]["post"]
    assert order["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Order"}
    assert "Order" in spec["components"]["schemas"]
    ok_schema = order["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    envelope = spec["components"]["schemas"][ok_schema.rsplit("/", 1)[-1]]
    assert set(envelope["properties"]) >= {"status", "message", "timestamp", "data"}
    stream = spec["paths"]["/api/v1/kitchen/stream"]["get"]["responses"]["200"]["content"]
    assert "text/event-stream" in stream


def test_on_start_before_traffic_and_on_stop(framex_container: Container, framex_app: Any) -> None:
    with TestClient(framex_app) as client:
        assert client.get("/api/v1/kitchen/state").json()["data"] == {"started": True, "stopped": False}
        runtime = framex_container.runtime()
        instance = runtime.handler(runtime.registry.get_api("/kitchen/state")).__self__
    assert instance.stopped is True


def test_status_code_option_sets_the_status(client: httpx.Client) -> None:
    response = client.post("/api/v1/kitchen/created", params={"name": "n"})
    assert response.status_code == 201
    assert response.json()["status"] == 201 and response.json()["data"] == {"name": "n"}
    spec = client.get("/api/v1/openapi.json").json()["paths"]["/api/v1/kitchen/created"]["post"]
    assert "201" in spec["responses"] and spec["summary"] == "Create a thing"


def test_handler_with_its_own_request_parameter(client: httpx.Client) -> None:
    response = client.get("/api/v1/kitchen/whoami", params={"shout": True}, headers={"user-agent": "probe/1"})
    assert response.status_code == 200
    assert ok(response) == "PROBE/1"
    params = client.get("/api/v1/openapi.json").json()["paths"]["/api/v1/kitchen/whoami"]["get"]["parameters"]
    assert [p["name"] for p in params] == ["shout"]
