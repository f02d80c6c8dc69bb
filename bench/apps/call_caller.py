"""The calling plugin of ``bench.plugin_call``: measurements run inside its handler, as it."""

from collections.abc import Awaitable, Callable
from typing import Any

from framex.plugin import PluginMetadata, on_request

__plugin_meta__ = PluginMetadata(name="call_caller", required_remote_apis=["/call/noop", "/call/args", "/call/sync"])


@on_request()
async def inside(probe: Callable[[], Awaitable[Any]]) -> Any:
    """Await ``probe()`` in this plugin's handler context (its calls are checked as this plugin's)."""
    return await probe()
