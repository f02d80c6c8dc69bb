"""Requires the API `discovering` finds at start, and calls it in its own `on_start`."""

from __future__ import annotations

from framex.plugin import PluginMetadata, call_plugin_api
from tests.fixture_plugins.order_log import events

__plugin_meta__ = PluginMetadata(name="needs_found", priority=10, required_remote_apis=["/api/v1/found"])


async def on_start() -> None:
    events.append(f"needs_found.on_start: {await call_plugin_api('/api/v1/found')}")
