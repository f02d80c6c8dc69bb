from __future__ import annotations

import pytest

from framex.config import Settings
from framex.errors import ApiNotFoundError, PluginStartError
from framex.plugin.registry import PluginRegistry
from framex.plugin.runtime import PluginRuntime
from tests.fixture_plugins.order_log import events

FP = "tests.fixture_plugins"


def runtime_of(**settings: object) -> PluginRuntime:
    return PluginRuntime(PluginRegistry(Settings.model_validate(settings)))


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    events.clear()


async def test_start_by_priority_and_stop_in_reverse_start_order() -> None:
    reg = runtime_of()
    reg.registry.load(f"{FP}.ordered")
    await reg.start()
    assert reg.started
    await reg.start()  # once only
    await reg.stop()
    assert events == ["start second", "start first", "stop first", "stop second"]
    assert not reg.started


async def test_plugins_loaded_after_start_start_on_next_use() -> None:
    reg = runtime_of()
    reg.registry.load(f"{FP}.ordered.first")
    assert await reg.invoke(reg.registry.get_api("/ordered/first"), {}) == "first"
    await reg.start()
    reg.registry.load(f"{FP}.ordered.second")
    assert not reg.started
    await reg.start()
    assert await reg.invoke(reg.registry.get_api("/ordered/second"), {}) == "second"
    assert events == ["start first", "start second"]


async def test_failed_start_is_reported_and_retried() -> None:
    reg = runtime_of()
    reg.registry.load(f"{FP}.failing_start")
    for _ in range(2):
        with pytest.raises(PluginStartError, match="cannot reach the model store"):
            await reg.start()
    assert not reg.started


async def test_module_level_hooks_run_and_imported_ones_do_not() -> None:
    from tests.fixture_plugins import module_hooks

    module_hooks.events.clear()
    runtime = PluginRuntime(PluginRegistry(Settings()))
    registry = runtime.registry
    registry.load("tests.fixture_plugins.imported_hooks")
    await runtime.start()
    await runtime.stop()
    assert module_hooks.events == []  # the functions it imported are module_hooks' hooks, not its own
    registry.load("tests.fixture_plugins.module_hooks")
    await runtime.start()
    assert module_hooks.events == ["start"]
    await runtime.stop()
    assert module_hooks.events == ["start", "stop"]


async def test_plugins_that_discover_apis_start_first_and_others_may_require_what_they_find() -> None:
    from fastapi.testclient import TestClient

    import framex
    from framex.container import close_container

    container = framex.create_container(
        None, load_builtin_plugins=[], load_plugins=[f"{FP}.needs_found", f"{FP}.discovering"]
    )
    try:
        with framex.use_container(container):
            await container.runtime().start()  # needs_found's requirement is met by what discovering found
        assert events == ["discovering.on_start", "needs_found.on_start: found at start"]
        await container.runtime().stop()
        events.clear()
        with TestClient(framex.create_app(container)) as client:
            assert client.get("/api/v1/found").text == "served by what was found"
    finally:
        close_container(container)


def test_without_the_discovering_plugin_the_requirement_fails() -> None:
    reg = runtime_of(load_builtin_plugins=[], load_plugins=[f"{FP}.needs_found"])
    reg.registry.load_configured()
    with pytest.raises(ApiNotFoundError, match="requires API `/api/v1/found`"):
        reg.instantiate()


def test_a_sync_handler_sees_its_plugin_and_the_request_on_its_worker_thread() -> None:
    from fastapi.testclient import TestClient

    import framex
    from framex.container import close_container

    container = framex.create_container(None, load_builtin_plugins=[], load_plugins=[f"{FP}.sync_context"])
    try:
        with TestClient(framex.create_app(container)) as client:
            response = client.get("/api/v1/sync_context", headers={"X-Request-ID": "req-sync-1"})
        seen = response.json()["data"]
        assert seen["plugin"] == "sync_context" and seen["request_id"] == "req-sync-1"
        assert seen["thread"] != "MainThread"
    finally:
        close_container(container)
