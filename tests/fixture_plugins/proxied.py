"""The FrameX upstream of the proxy tests: plain APIs, a stream, a guarded path, and the
proxy functions (imported, so this service runs them)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from framex.plugin import PluginMetadata, on_request
from tests.fixture_plugins import proxy_functions  # noqa: F401 - serves its @on_proxy functions

__plugin_meta__ = PluginMetadata(name="proxied")


@on_request("/remote_greet")
async def remote_greet(name: str, times: int = 1) -> str:
    return " ".join([f"hello {name}"] * times)


@on_request("/remote_count", stream=True)
async def remote_count(n: int) -> AsyncIterator[dict[str, int]]:
    for i in range(n):
        yield {"i": i}


@on_request("/guarded")
async def guarded() -> str:
    return "inside"
