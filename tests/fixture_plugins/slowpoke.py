"""Handlers that block the event loop, and handlers that do not (for the loop watchdog)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from framex.plugin import PluginMetadata, on_request

__plugin_meta__ = PluginMetadata(name="slowpoke")

BLOCK_SECONDS = 1.0
"""How long the slow handlers block the loop."""
WARN_MS = 250
"""The watchdog threshold tests use: a quarter of the block, so a blocked loop is noticed even when
the watchdog's thread runs late, and far above what a busy machine does to a fast request (the
process waiting for a CPU, a garbage collection holding the GIL), so a fast route is never blamed."""


@on_request("/slowpoke/slow")
async def slow() -> str:
    time.sleep(BLOCK_SECONDS)  # the mistake the watchdog reports: blocking in an async handler
    return "done"


@on_request("/slowpoke/fast")
async def fast() -> str:
    return "quick"


@on_request("/slowpoke/slow_stream", stream=True)
async def slow_stream() -> AsyncIterator[int]:
    yield 1
    time.sleep(BLOCK_SECONDS)  # blocks while the response streams, after the endpoint returned
    yield 2
