"""The front service of the end-to-end tracing test: one route that sends work to a
thread and to a worker process (Ray tasks on Ray), calls a plugin class (a deployment of
its own on Ray) and an API an upstream FrameX service serves (through the proxy plugin);
another that relays the upstream's stream (SSE), read through ``call_plugin_api``."""

from __future__ import annotations

from typing import Any

from framex.plugin import ApiType, BasePlugin, PluginMetadata, call_plugin_api, on_register, on_request
from tests.fixture_plugins.traced import in_process, in_thread, seen

__plugin_meta__ = PluginMetadata(
    name="traced_front", required_remote_apis=["/api/v1/traced/batch", "/api/v1/traced/stream"]
)


@on_register()
class TracedHelper(BasePlugin):
    @on_request("/front/add", call_type=ApiType.FUNC)
    async def add(self, x: int) -> dict[str, Any]:
        return {"sum": x + 1, **seen()}


@on_request("/front/all")
async def all_hops() -> dict[str, Any]:
    return {
        "thread": await in_thread.remote(),
        "process": await in_process.remote(),
        "class": await call_plugin_api("traced_front.TracedHelper.add", x=1),
        "upstream": await call_plugin_api("/api/v1/traced/batch"),
    }


@on_request("/front/relay")
async def relay() -> list[Any]:
    return [item async for item in await call_plugin_api("/api/v1/traced/stream")]
