"""The front service of the end-to-end tracing test: one route that sends work to a
thread and to a worker process, and calls an API an upstream FrameX service serves
(through the proxy plugin)."""

from __future__ import annotations

from typing import Any

from framex.plugin import PluginMetadata, call_plugin_api, on_request
from tests.fixture_plugins.traced import in_process, in_thread

__plugin_meta__ = PluginMetadata(name="traced_front", required_remote_apis=["/api/v1/traced/batch"])


@on_request("/front/all")
async def all_hops() -> dict[str, Any]:
    return {
        "thread": await in_thread.remote(),
        "process": await in_process.remote(),
        "upstream": await call_plugin_api("/api/v1/traced/batch"),
    }


@on_request("/front/remote")
async def remote_only() -> dict[str, Any]:
    return {"thread": await in_thread.remote(), "process": await in_process.remote()}
