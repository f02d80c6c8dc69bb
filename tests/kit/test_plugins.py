"""Plugins in the shapes FrameX-kit documents and tests, and the answers its tests expect."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

import framex
from framex.consts import API_STR

MESSAGE = "hello world"
ACCOUNT = {"aid": 7, "aname": "kit", "level": 3}


def sse(text: str) -> tuple[set[str], list[dict[str, Any]]]:
    """The event types and the data objects of an SSE body."""
    events, data = set(), []
    for line in text.splitlines():
        if line.startswith("event: "):
            events.add(line.removeprefix("event: "))
        elif line.startswith("data: "):
            data.append(json.loads(line.removeprefix("data: ")))
    return events, data


def test_echo_answers_as_on_the_kit(kit_client: TestClient) -> None:
    res = kit_client.get(f"{API_STR}/echo", params={"message": MESSAGE}).json()
    assert res["status"] == 200 and res["data"] == MESSAGE
    res = kit_client.post(f"{API_STR}/echo_model", params={"message": MESSAGE}, json={"id": 1, "name": "test name"})
    assert res.json()["data"] == "hello world,{'id': 1, 'name': 'test name'}"


def test_echo_stream_sends_kit_events(kit_client: TestClient) -> None:
    with kit_client.stream("GET", f"{API_STR}/echo_stream", params={"message": MESSAGE}) as res:
        assert res.status_code == 200
        events, data = sse(res.read().decode())
    assert events == {"finish", "message_chunk"}
    assert "".join(d["content"] for d in data if d) == f"This message is being streamed., {MESSAGE}"
    assert data[-1] == {}  # the `finish` event


def test_invoker_gets_seven_items(kit_client: TestClient) -> None:
    res = kit_client.get(f"{API_STR}/kit/invoke", params={"message": MESSAGE}).json()
    assert res["status"] == 200
    assert res["data"] == [
        MESSAGE,
        f"This message is being streamed., {MESSAGE}",
        f"I am calling with message={MESSAGE},call_back_result=cb:{MESSAGE}",
        "hello world,{'id': 2, 'name': 'm'}",
        "sync;sync(x);async;async(1,y)",
        ACCOUNT,
        ACCOUNT,
    ]


def test_call_remote_api_reads_a_stream_into_a_list(kit_client: TestClient) -> None:
    assert kit_client.get(f"{API_STR}/kit/stream_type").json()["data"] == "list"


async def test_call_plugin_api_keeps_framex_results(kit_container: Any) -> None:
    # FrameX's own name keeps FrameX's semantics: an async iterator, the model itself
    # (docs/migrating.md, "What call_plugin_api returns").
    framex.load_builtin_plugins("echo")
    framex.load_plugins("tests.kit.plugins.kit_alias")
    stream = await framex.call_plugin_api("/api/v1/echo_stream", message="a")
    assert hasattr(stream, "__aiter__")
    assert [item async for item in stream][-1] == "event: finish\ndata: {}\n\n"
    account = await framex.call_plugin_api(api_name="kit_alias.AccountPlugin.get_account")
    assert account.account_id == 7


def test_alias_model_over_http(kit_client: TestClient) -> None:
    assert kit_client.get(f"{API_STR}/kit/account").json()["data"] == ACCOUNT


def test_post_call_hook_is_applied(kit_client: TestClient) -> None:
    assert kit_client.get(f"{API_STR}/kit/hooked", params={"message": "m"}).json()["data"] == {"hooked": "m"}


def test_missing_and_undeclared_apis_are_runtime_errors(kit_client: TestClient) -> None:
    assert kit_client.get(f"{API_STR}/kit/undeclared").json()["data"] == "RuntimeError: ApiNotDeclaredError"
    assert kit_client.get(f"{API_STR}/kit/missing").json()["data"] == "RuntimeError: ApiNotFoundError"


def test_slashless_path_and_kit_stream_helpers(kit_client: TestClient) -> None:
    res = kit_client.get(f"{API_STR}/kit/words", params={"text": "a b"})
    assert res.text == (
        'event: message_chunk\ndata: {"content": "a"}\n\n'
        'event: message_chunk\ndata: {"content": "b"}\n\n'
        "event: finish\ndata: {}\n\n"
    )


def test_http_exception_in_a_stream_is_an_error_event(kit_client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        res = kit_client.get(f"{API_STR}/kit/refused_stream")
    events, data = sse(res.text)
    assert res.status_code == 200  # the stream had started
    assert events == {"message_chunk", "error"}
    assert data[-1]["status"] == 403 and data[-1]["message"] == "not for you"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_kit_settings_and_logger(kit_client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    data = kit_client.get(f"{API_STR}/kit/settings").json()["data"]
    assert data == {"port": 8080, "use_ray": False, "plugins": ["kit_meta"], "recording": False}
    with caplog.at_level(logging.INFO, logger="framex.plugin"):
        framex.logger.success("done {}", 1)
        framex.logger.opt(colors=True).warning("<y>careful</y>")
    records = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert records == [("INFO", "done 1"), ("WARNING", "<y>careful</y>")]


def test_config_class_module_without_apis(kit_client: TestClient) -> None:
    plugin = framex.get_plugin("kit_meta")
    assert plugin is not None and plugin.metadata.config_class is not None
    config = framex.get_plugin_config("kit_meta", plugin.metadata.config_class)
    assert config.model_dump() == {"id": 1, "label": "from-yaml"}
    assert framex.get_plugin("nope") is None
    assert kit_client.get("/version").json()["data"]["plugins"]["kit_meta"] == framex.VERSION


# -- deliberate differences (docs/migrating.md, "Where FrameX answers differently") ----


def test_health_is_plain_text(kit_client: TestClient) -> None:
    # The kit answers JSON "ok"; FrameX answers plain text, as load balancers expect.
    res = kit_client.get("/health")
    assert res.text == "ok" and res.headers["content-type"].startswith("text/plain")


def test_errors_use_real_status_codes(kit_client: TestClient) -> None:
    # The kit answers HTTP 200 with `"status": 404` in the body.
    res = kit_client.get(f"{API_STR}/nowhere")
    assert res.status_code == 404 and res.json()["status"] == 404
