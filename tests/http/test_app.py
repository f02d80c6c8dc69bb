from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from framex.consts import VERSION
from tests.fixture_plugins.kitchen import SECRET


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == 200 and body["message"] == "success"
    assert "T" in body["timestamp"]
    return body["data"]


def test_service_routes(framex_client: TestClient) -> None:
    assert framex_client.get("/health").text == "ok"
    assert framex_client.get("/ping").text == "pong"
    info = ok(framex_client.get("/version"))
    assert info["version"] == VERSION and info["adapter"] == "local"
    assert info["plugins"]["kitchen"] == "2.3.4"
    assert framex_client.get("/docs").status_code == 200
    assert framex_client.get("/redoc").status_code == 200


def test_seed_demo_routes(framex_client: TestClient) -> None:
    assert ok(framex_client.get("/api/v1/demo/run", params={"x": 21})) == 42
    assert ok(framex_client.get("/api/v1/demo/double_21")) == 42
    assert ok(framex_client.post("/api/v1/demo/total", json=[1, 2, 3])) == 6
    assert ok(framex_client.get("/api/v1/demo/scale", params={"x": 2})) == 20


def test_defaults_are_kept(framex_client: TestClient) -> None:
    assert ok(framex_client.get("/api/v1/kitchen/defaults")) == {"name": "chef", "count": 3, "hot": True}
    got = ok(framex_client.get("/api/v1/kitchen/defaults", params={"count": 7, "hot": "false"}))
    assert got == {"name": "chef", "count": 7, "hot": False}


def test_sync_handler_runs_off_the_loop(framex_client: TestClient) -> None:
    data = ok(framex_client.get("/api/v1/kitchen/sync", params={"x": 3}))
    assert data["x"] == 3 and data["thread"] != "MainThread"


def test_body_model_and_query_together(framex_client: TestClient) -> None:
    data = ok(framex_client.post("/api/v1/kitchen/order", params={"note": "!"}, json={"item": "tea", "quantity": 2}))
    assert data == {"item": "tea!", "quantity": 4}


def test_validation_error_is_422_with_details(framex_client: TestClient) -> None:
    response = framex_client.post("/api/v1/kitchen/order", json={"item": "", "quantity": 0})
    assert response.status_code == 422
    body = response.json()
    assert body["status"] == 422 and body["message"].startswith("Invalid request: `body.item`")
    assert {tuple(e["loc"]) for e in body["data"]} == {("body", "item"), ("body", "quantity")}
    missing = framex_client.get("/api/v1/demo/run")
    assert missing.status_code == 422 and missing.json()["data"][0]["loc"] == ["query", "x"]
    bad_json = framex_client.post(
        "/api/v1/kitchen/order", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 422


def test_unknown_route_and_method(framex_client: TestClient) -> None:
    missing = framex_client.get("/api/v1/nothing")
    assert missing.status_code == 404 and missing.json()["status"] == 404
    wrong = framex_client.delete("/api/v1/demo/run")
    assert wrong.status_code == 405 and wrong.json()["message"] == "Method Not Allowed"


def test_http_exception_keeps_its_status(framex_client: TestClient) -> None:
    response = framex_client.get("/api/v1/kitchen/teapot")
    assert response.status_code == 418
    assert response.json()["message"] == "I'm a teapot"


def test_500_hides_exception_text_and_gives_request_id(
    framex_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="framex.http"):
        response = framex_client.get("/api/v1/kitchen/boom", headers={"X-Request-ID": "trace-123"})
    assert response.status_code == 500
    assert SECRET not in response.text and "RuntimeError" not in response.text
    body = response.json()
    assert body["status"] == 500 and body["request_id"] == "trace-123"
    assert response.headers["X-Request-ID"] == "trace-123"
    assert "trace-123" in caplog.text and SECRET in caplog.text  # the operator gets the details
    # An unusable client id (log injection) is replaced by a generated one.
    generated = framex_client.get("/api/v1/kitchen/boom", headers={"X-Request-ID": "bad\tid"})
    assert generated.json()["request_id"] != "bad\tid" and len(generated.json()["request_id"]) == 32
    # The service keeps serving.
    assert framex_client.get("/health").text == "ok"


def test_raw_response(framex_client: TestClient) -> None:
    assert framex_client.get("/api/v1/kitchen/raw", params={"value": 5}).json() == {"value": 5}


def test_sse_stream(framex_client: TestClient) -> None:
    response = framex_client.get("/api/v1/kitchen/stream", params={"n": 3})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text == 'data: {"i":0}\n\ndata: {"i":1}\n\ndata: {"i":2}\n\n'


def test_sse_from_sync_generator_passes_ready_events(framex_client: TestClient) -> None:
    response = framex_client.get("/api/v1/kitchen/sync_stream")
    assert response.text == "event: tick\ndata: 0\n\nevent: tick\ndata: 1\n\n"


def test_sse_error_mid_stream_ends_with_error_event(framex_client: TestClient) -> None:
    response = framex_client.get("/api/v1/kitchen/broken_stream")
    assert response.text.startswith("data: 1\n\nevent: error\ndata: ")
    assert SECRET not in response.text and '"status":500' in response.text


def test_echo_stream_and_greeter(framex_client: TestClient) -> None:
    events = framex_client.get("/api/v1/echo_stream", params={"message": "ab"}).text
    assert events == 'data: {"content":"a"}\n\ndata: {"content":"b"}\n\n'
    assert ok(framex_client.get("/api/v1/greeter/hello", params={"name": "ann"})) == "Hi, ann!"
    assert ok(framex_client.get("/api/v1/greeter/hello", params={"name": "ann", "loud": True})) == "HI, ANN!"
    assert ok(framex_client.get("/api/v1/greeter/double", params={"x": 4})) == {"x": 4, "doubled": 8}
    stream = framex_client.get("/api/v1/greeter/stream", params={"name": "bo"}).text
    assert stream == 'data: {"word":"Hi"}\n\ndata: {"word":"bo!"}\n\n'
    assert framex_client.get("/api/v1/greeter/ready").json() == {"sample": "ready"}


def test_module_level_handler_with_two_methods(framex_client: TestClient) -> None:
    assert ok(framex_client.get("/api/v1/kitchen/module_level", params={"word": "x"})) == "xx"
    assert ok(framex_client.post("/api/v1/kitchen/module_level")) == "hihi"


def test_function_only_api_has_no_route(framex_client: TestClient) -> None:
    paths = framex_client.get("/api/v1/openapi.json").json()["paths"]
    assert not any("add" in p for p in paths)
    assert "/api/v1/kitchen/both" in paths


def test_openapi_has_real_parameters_and_bodies(framex_client: TestClient) -> None:
    spec = framex_client.get("/api/v1/openapi.json").json()
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


def test_on_start_before_traffic_and_on_stop(framex_app: Any) -> None:
    with TestClient(framex_app) as client:
        assert client.get("/api/v1/kitchen/state").json()["data"] == {"started": True, "stopped": False}
        registry = framex_app.state.framex_container.registry()
        instance = registry.handler(registry.get_api("/kitchen/state")).__self__
    assert instance.stopped is True


def test_status_code_option_sets_the_status(framex_client: TestClient) -> None:
    response = framex_client.post("/api/v1/kitchen/created", params={"name": "n"})
    assert response.status_code == 201
    assert response.json()["status"] == 201 and response.json()["data"] == {"name": "n"}
    spec = framex_client.get("/api/v1/openapi.json").json()["paths"]["/api/v1/kitchen/created"]["post"]
    assert "201" in spec["responses"] and spec["summary"] == "Create a thing"
