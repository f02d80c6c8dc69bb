from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import framex
from framex import Container, create_app, create_container, get_container, use_container
from framex.adapters.local import LocalAdapter
from framex.errors import ConfigError
from framex.testing import RecordingAdapter

FP = "tests.fixture_plugins"


def test_container_wires_settings_adapter_registry(framex_container: Container) -> None:
    assert framex_container.settings().local.max_workers == 8
    adapter = framex_container.adapter()
    assert isinstance(adapter, LocalAdapter) and adapter.max_workers == 8
    assert framex_container.adapter() is adapter  # one adapter per container
    assert framex_container.registry() is framex_container.registry()
    assert create_app(framex_container) is create_app(framex_container)


def test_create_container_overrides_and_errors(tmp_path: Path) -> None:
    container = create_container(None, server__title="T", local={"max_workers": 3})
    assert container.settings().server.title == "T"
    assert container.adapter().max_workers == 3
    with pytest.raises(ConfigError, match="`adapter`"):
        create_container(None, adapter="gpu")
    with pytest.raises(ConfigError, match="does not exist"):
        create_container(tmp_path / "missing.yaml")


def test_use_container_plain_and_as_context(isolated_default: None) -> None:
    first, second = create_container(None), create_container(None)
    use_container(first)
    assert get_container() is first
    with use_container(second) as active:
        assert active is second and get_container() is second
    assert get_container() is first


def test_default_container_built_lazily_from_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_default: None
) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "local.yaml").write_text("server: {title: from-cwd}\n")
    monkeypatch.chdir(tmp_path)
    container = get_container()
    assert container.settings().server.title == "from-cwd"
    assert get_container() is container


def test_run_in_test_mode_returns_the_app(isolated_default: None) -> None:
    app = framex.run(test_mode=True, load_plugins=[f"{FP}.collection.alpha"])
    assert isinstance(app, FastAPI)
    with TestClient(app) as client:
        assert client.get("/api/v1/alpha").json()["data"] == "alpha"


def test_two_embedded_containers_do_not_leak() -> None:
    one = create_container(
        None, load_builtin_plugins=[], server__title="one", load_plugins=[f"{FP}.introspect", f"{FP}.collection.alpha"]
    )
    two = create_container(
        None, load_builtin_plugins=[], server__title="two", load_plugins=[f"{FP}.introspect", f"{FP}.collection.beta"]
    )
    fake = RecordingAdapter()
    one.adapter.override(fake)

    host = FastAPI()

    @host.get("/own")
    async def own() -> str:
        return "host route"

    host.mount("/one", create_app(one))
    host.mount("/two", create_app(two))
    with TestClient(host) as client:
        assert client.get("/own").json() == "host route"
        first = client.get("/one/api/v1/introspect").json()["data"]
        second = client.get("/two/api/v1/introspect").json()["data"]
        assert client.get("/one/api/v1/alpha").status_code == 200
        assert client.get("/two/api/v1/alpha").status_code == 404
        assert client.get("/two/api/v1/beta").status_code == 200
        assert client.get("/one/api/v1/beta").status_code == 404
        one_paths = client.get("/one/api/v1/openapi.json").json()["paths"]
    assert first == {
        "title": "one",
        "adapter": "RecordingAdapter",
        "plugins": ["alpha", "introspect"],
        "started": True,
        "job": "ran",
    }
    assert second == {
        "title": "two",
        "adapter": "LocalAdapter",
        "plugins": ["beta", "introspect"],
        "started": True,
        "job": "ran",
    }
    assert fake.names == ["where"]  # only the first container's call reached its fake
    assert "/api/v1/alpha" in one_paths and "/api/v1/beta" not in one_paths
    framex.container.close_container(two)


def test_loading_after_the_app_is_built_is_refused(framex_container: Container) -> None:
    create_app(framex_container)
    with pytest.raises(framex.FrameXError, match="already built"):
        framex.load_plugins(f"{FP}.collection.alpha")


def test_plugin_start_failure_names_the_plugin() -> None:
    container = create_container(None, load_plugins=[f"{FP}.failing_start"])
    app = create_app(container)
    expected = (
        r"Plugin `failing_start`: `FailingPlugin.on_start\(\)` failed: ConnectionError: cannot reach the model store"
    )
    with pytest.raises(framex.errors.PluginStartError, match=expected), TestClient(app):
        pass
