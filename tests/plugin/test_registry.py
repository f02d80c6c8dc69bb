from __future__ import annotations

import pytest

from framex.config import Settings
from framex.errors import PluginStartError
from framex.plugin.registry import PluginRegistry
from tests.fixture_plugins.order_log import events

FP = "tests.fixture_plugins"


def registry(**settings: object) -> PluginRegistry:
    return PluginRegistry(Settings.model_validate(settings))


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    events.clear()


async def test_start_by_priority_and_stop_in_reverse_start_order() -> None:
    reg = registry()
    reg.load(f"{FP}.ordered")
    await reg.start()
    assert reg.started
    await reg.start()  # once only
    await reg.stop()
    assert events == ["start second", "start first", "stop first", "stop second"]
    assert not reg.started


async def test_plugins_loaded_after_start_start_on_next_use() -> None:
    reg = registry()
    reg.load(f"{FP}.ordered.first")
    assert await reg.invoke(reg.get_api("/ordered/first"), {}) == "first"
    await reg.start()
    reg.load(f"{FP}.ordered.second")
    assert not reg.started
    await reg.start()
    assert await reg.invoke(reg.get_api("/ordered/second"), {}) == "second"
    assert events == ["start first", "start second"]


async def test_failed_start_is_reported_and_retried() -> None:
    reg = registry()
    reg.load(f"{FP}.failing_start")
    for _ in range(2):
        with pytest.raises(PluginStartError, match="cannot reach the model store"):
            await reg.start()
    assert not reg.started


async def test_module_level_hooks_run_and_imported_ones_do_not() -> None:
    from tests.fixture_plugins import module_hooks

    module_hooks.events.clear()
    registry = PluginRegistry(Settings())
    registry.load("tests.fixture_plugins.imported_hooks")
    await registry.start()
    await registry.stop()
    assert module_hooks.events == []  # the functions it imported are module_hooks' hooks, not its own
    registry.load("tests.fixture_plugins.module_hooks")
    await registry.start()
    assert module_hooks.events == ["start"]
    await registry.stop()
    assert module_hooks.events == ["start", "stop"]
