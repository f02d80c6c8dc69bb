"""Access control: `auth.rules` API keys, checked by the auth middleware."""

from __future__ import annotations

import importlib.util
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from framex import create_app
from framex.config import load_settings
from framex.container import close_container, create_container, use_container
from framex.errors import ConfigError
from framex.http import auth
from framex.http.auth import MISSING_KEY_MESSAGE, WRONG_KEY_MESSAGE, AuthMiddleware
from tests.server import ROOT, framex_server

API_KEY = "api-key-5c0f1d"
ROTATED_KEY = "rotated-key-8e21aa"
DEMO_KEY = "demo-key-from-env-3b9d47"  # only ever in the environment, never in the YAML
RUN_KEY = "run-key-91e4c2"
DOCS_KEY = "docs-key-70a6be"
ALL_KEYS = (API_KEY, ROTATED_KEY, DEMO_KEY, RUN_KEY, DOCS_KEY)

CONFIG = """\
load_builtin_plugins: [echo]
load_plugins: [plugins]
auth:
  rules:
    # Written from the widest rule to the narrowest: the order in the file does not matter.
    "/api/v1/*": [api-key-5c0f1d, rotated-key-8e21aa]
    "/api/v1/demo/*": ["${AUTH_TEST_DEMO_KEY}"]
    "/api/v1/demo/run": [run-key-91e4c2]
    "/docs": [docs-key-70a6be]
    "/redoc": [docs-key-70a6be]
    "/api/v1/openapi.json": [docs-key-70a6be]
    "/metrics": [docs-key-70a6be]
"""


def write_config(folder: Path, text: str = CONFIG) -> Path:
    path = folder / "framex.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def framex_config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUTH_TEST_DEMO_KEY", DEMO_KEY)
    return write_config(tmp_path)


def status(client: TestClient | httpx.Client, path: str, key: str | None = None, **params: Any) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    code: int = client.get(path, params=params, headers=headers).status_code
    return code


def assert_refused(response: httpx.Response, message: str) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["status"] == 401 and body["message"] == message and body["data"] is None
    assert response.headers["WWW-Authenticate"] == "Bearer"
    for key in ALL_KEYS:
        assert key not in response.text
        assert all(key not in value for value in response.headers.values())


def test_exact_rule_wins_over_wildcards(framex_client: TestClient) -> None:
    assert status(framex_client, "/api/v1/demo/run", RUN_KEY, x=1) == 200
    # The wildcards covering the path do not add their keys: the exact rule alone decides.
    assert status(framex_client, "/api/v1/demo/run", DEMO_KEY, x=1) == 401
    assert status(framex_client, "/api/v1/demo/run", API_KEY, x=1) == 401


def test_longest_wildcard_prefix_wins(framex_client: TestClient) -> None:
    assert status(framex_client, "/api/v1/demo/double_21", DEMO_KEY) == 200
    assert status(framex_client, "/api/v1/demo/double_21", API_KEY) == 401
    assert status(framex_client, "/api/v1/greeter/hello", API_KEY) == 200
    assert status(framex_client, "/api/v1/greeter/hello", ROTATED_KEY) == 200
    assert status(framex_client, "/api/v1/greeter/hello", DEMO_KEY) == 401
    # A prefix is a plain string prefix: `/api/v1/demo/*` does not cover `/api/v1/demo`, `/api/v1/*` does.
    assert status(framex_client, "/api/v1/demo", API_KEY) == 404
    assert status(framex_client, "/api/v1/demo") == 401


def test_a_key_that_passed_one_rule_is_checked_again_under_another(framex_client: TestClient) -> None:
    # Accepted keys are remembered with the rule they passed: twice, so the second round
    # runs with both keys remembered.
    for _ in range(2):
        assert status(framex_client, "/api/v1/greeter/hello", API_KEY) == 200
        assert status(framex_client, "/api/v1/demo/double_21", API_KEY) == 401
        assert status(framex_client, "/api/v1/demo/double_21", DEMO_KEY) == 200
        assert status(framex_client, "/api/v1/greeter/hello", DEMO_KEY) == 401
        assert status(framex_client, "/api/v1/demo/double_21") == 401


def test_with_no_room_to_remember_keys_the_answers_stay_the_same(
    framex_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "MAX_REMEMBERED", 0)
    for _ in range(2):
        assert status(framex_client, "/api/v1/greeter/hello", API_KEY) == 200
        assert status(framex_client, "/api/v1/greeter/hello", DEMO_KEY) == 401


def test_unmatched_paths_stay_public(framex_client: TestClient) -> None:
    assert framex_client.get("/health").text == "ok"
    assert status(framex_client, "/version") == 200
    assert status(framex_client, "/nowhere") == 404


def test_key_raw_or_bearer(framex_client: TestClient) -> None:
    def get(authorization: str) -> int:
        code: int = framex_client.get("/api/v1/demo/double_21", headers={"Authorization": authorization}).status_code
        return code

    assert get(DEMO_KEY) == 200
    assert get(f"Bearer {DEMO_KEY}") == 200
    assert get(f"bearer   {DEMO_KEY} ") == 200  # the scheme is case-insensitive
    assert get(f"Basic {DEMO_KEY}") == 401
    assert get(f"Bearer {DEMO_KEY}x") == 401
    assert get(DEMO_KEY[:-1]) == 401
    assert get("Bearer") == 401


def test_refusals_are_enveloped_and_never_show_the_key(
    framex_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    missing = framex_client.get("/api/v1/demo/double_21")
    assert_refused(missing, MISSING_KEY_MESSAGE)
    assert_refused(framex_client.get("/api/v1/demo/double_21", headers={"Authorization": ""}), MISSING_KEY_MESSAGE)
    # A near miss, and keys that are right for other paths.
    for key in (DEMO_KEY + "0", API_KEY, RUN_KEY):
        wrong = framex_client.get("/api/v1/demo/double_21", headers={"Authorization": f"Bearer {key}"})
        assert_refused(wrong, WRONG_KEY_MESSAGE)
    assert "GET /api/v1/demo/double_21 refused: wrong API key" in caplog.text
    assert not any(key in caplog.text for key in ALL_KEYS)


def test_docs_openapi_and_metrics_can_be_protected(framex_client: TestClient) -> None:
    for path in ("/docs", "/redoc", "/api/v1/openapi.json"):
        assert status(framex_client, path) == 401
        # The exact rule wins over `/api/v1/*` for the OpenAPI document too.
        assert status(framex_client, path, API_KEY) == 401
        assert status(framex_client, path, DOCS_KEY) == 200
    # Refused before routing, so this holds whether or not the app serves `/metrics`.
    assert status(framex_client, "/metrics") == 401
    assert status(framex_client, "/metrics", DOCS_KEY) != 401


def test_keys_from_the_environment(framex_config_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert DEMO_KEY not in framex_config_path.read_text()
    assert load_settings(framex_config_path).auth.rules["/api/v1/demo/*"] == [DEMO_KEY]
    monkeypatch.setenv("AUTH_TEST_DEMO_KEY", "rotated-in-env")
    assert load_settings(framex_config_path).auth.rules["/api/v1/demo/*"] == ["rotated-in-env"]
    monkeypatch.delenv("AUTH_TEST_DEMO_KEY")
    with pytest.raises(ConfigError, match=r"environment variable `AUTH_TEST_DEMO_KEY` is not set"):
        load_settings(framex_config_path)


def test_keys_stay_out_of_the_settings_repr(framex_config_path: Path) -> None:
    settings = load_settings(framex_config_path)
    assert not any(key in repr(settings) for key in ALL_KEYS)


def test_websockets_are_protected_too(framex_app: FastAPI, framex_client: TestClient) -> None:
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    framex_app.add_api_websocket_route("/api/v1/demo/ws", echo)
    with pytest.raises(WebSocketDisconnect) as refused, framex_client.websocket_connect("/api/v1/demo/ws"):
        pass
    assert refused.value.code == 1008
    with framex_client.websocket_connect("/api/v1/demo/ws", headers={"Authorization": DEMO_KEY}) as websocket:
        websocket.send_text("hi")
        assert websocket.receive_text() == "hi"


def test_rules_apply_to_a_mounted_app(framex_app: FastAPI) -> None:
    outer = FastAPI()
    outer.mount("/plugins", framex_app)
    with TestClient(outer) as client:
        assert status(client, "/plugins/api/v1/demo/double_21") == 401
        assert status(client, "/plugins/api/v1/demo/double_21", DEMO_KEY) == 200
        assert status(client, "/plugins/api/v1/demo/run", DEMO_KEY, x=1) == 401
        assert status(client, "/plugins/health") == 200


def test_no_rules_no_middleware() -> None:
    container = create_container(ROOT / "tests" / "config.yaml")
    try:
        with use_container(container):
            app = create_app(container)
        assert not any(m.cls is AuthMiddleware for m in app.user_middleware)
    finally:
        close_container(container)


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        ('"api/v1/x": [k-1]', "`auth.rules.api/v1/x.[key]`: Value error, a rule path must start with `/`"),
        ('"/api/*/x": [k-1]', "`auth.rules./api/*/x.[key]`: Value error, `*` may only be the last character"),
        ('"/api/**": [k-1]', "`auth.rules./api/**.[key]`: Value error, `*` may only be the last character"),
        ('"/x?y=1": [k-1]', "`auth.rules./x?y=1.[key]`: Value error, a rule path is matched against the request path"),
        ('"/api/x": []', "`auth.rules./api/x`: Value error, a rule needs at least one key"),
        ('"/api/x": [""]', "`auth.rules./api/x.0`: Value error, an API key must be a non-empty string"),
        ('"/api/x": [good-key, "top secret"]', "`auth.rules./api/x.1`: Value error, an API key must be a non-empty"),
        ('"/api/x": [123456789]', "`auth.rules./api/x.0`: Value error, an API key must be a string, not int"),
        ('"/api/x": topsecret', "`auth.rules./api/x`: Input should be a valid list"),
    ],
)
def test_bad_rules_are_config_errors(tmp_path: Path, rules: str, problem: str) -> None:
    path = write_config(tmp_path, f"auth:\n  rules:\n    {rules}\n")
    where = r"Invalid configuration in `.*framex\.yaml`:\n  - "
    with pytest.raises(ConfigError, match=where + re.escape(problem)) as e:
        load_settings(path)
    # The message names the place, never what was written there.
    assert not re.search(r"top ?secret|123456789|good-key|k-1", str(e.value))


def test_unknown_auth_key_is_a_config_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, "auth:\n  rule: {}\n")
    with pytest.raises(ConfigError, match=r"`auth\.rule`: unknown key\. Accepted keys here: rules\."):
        load_settings(path)


@pytest.fixture
def server_config(tmp_path: Path) -> Path:
    return write_config(tmp_path, CONFIG + "log:\n  level: debug\n")


def check_served_rules(url: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        assert client.get("/health").text == "ok"
        assert_refused(client.get("/api/v1/demo/double_21"), MISSING_KEY_MESSAGE)
        assert_refused(client.get("/api/v1/demo/double_21", headers={"Authorization": API_KEY}), WRONG_KEY_MESSAGE)
        assert status(client, "/api/v1/demo/double_21", DEMO_KEY) == 200
        assert client.get("/api/v1/demo/run", params={"x": 21}, headers={"Authorization": RUN_KEY}).json()["data"] == 42
        assert status(client, "/api/v1/greeter/hello", ROTATED_KEY) == 200
        assert status(client, "/api/v1/openapi.json") == 401
        assert status(client, "/api/v1/openapi.json", DOCS_KEY) == 200


def test_real_server_enforces_rules_and_logs_no_key(server_config: Path) -> None:
    with framex_server("--config", str(server_config), env={"AUTH_TEST_DEMO_KEY": DEMO_KEY}) as server:
        check_served_rules(server.url)
        assert server.stop() == 0
        output = server.output()
    # The refusals are logged, at debug level...
    assert "GET /api/v1/demo/double_21 refused: wrong API key" in output
    assert not any(key in output for key in ALL_KEYS)  # ...and no key


@pytest.mark.ray
def test_ray_ingress_enforces_rules(server_config: Path) -> None:
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed (pip install -e '.[ray]')")
    env = {"AUTH_TEST_DEMO_KEY": DEMO_KEY, "FRAMEX__RAY__NUM_CPUS": "2"}
    with framex_server("--config", str(server_config), "--adapter", "ray", env=env, ready_timeout=240) as server:
        check_served_rules(server.url)  # the ingress replica builds the same app, middleware included
        assert server.stop(timeout=120) == 0, server.output()[-3000:]
