"""A plugin without a class, with module-level lifecycle hooks."""

from __future__ import annotations

from framex.plugin import PluginMetadata, on_request

__plugin_meta__ = PluginMetadata(name="module_hooks")

events: list[str] = []


async def on_start() -> None:
    events.append("start")


async def on_stop() -> None:
    events.append("stop")


@on_request("/module_hooks/events")
async def seen() -> list[str]:
    return list(events)
