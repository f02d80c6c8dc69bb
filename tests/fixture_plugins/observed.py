"""A plugin for the observability tests: a route with a path parameter, ``@remote`` jobs
that succeed (and log from the thread pool), fail and time out, and a request that
waits until the test lets it go.
"""

from __future__ import annotations

import asyncio
import logging

from framex.plugin import PluginMetadata, on_request, remote

__plugin_meta__ = PluginMetadata(name="observed")

logger = logging.getLogger("tests.observed")

gates: dict[str, asyncio.Event] = {}
"""``entered`` (set by ``/observed/wait``) and ``release`` (set by the test), made by the test on its loop."""


@remote()
def double(x: int) -> int:
    logger.info("doubling %d", x)  # on the local adapter's thread pool
    return x * 2


@remote()
def broken() -> None:
    raise ValueError("broken on purpose")


@remote(timeout=0.01)
async def never_done() -> None:
    await asyncio.Event().wait()


@on_request("/observed/items/{item_id}")
async def item(item_id: int) -> int:
    return await double.remote(item_id)


@on_request("/observed/broken")
async def call_broken() -> None:
    await broken.remote()


@on_request("/observed/timeout")
async def call_never_done() -> None:
    await never_done.remote()


@on_request("/observed/wait")
async def wait() -> str:
    gates["entered"].set()
    await gates["release"].wait()
    return "released"
