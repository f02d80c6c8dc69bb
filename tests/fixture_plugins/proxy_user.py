"""A plugin of the proxying service: calls an upstream API by path and a proxy function."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from framex.plugin import PluginMetadata, call_plugin_api, on_request
from tests.fixture_plugins.proxy_functions import Point, summarize

__plugin_meta__ = PluginMetadata(
    name="proxy_user", required_remote_apis=["/api/v1/remote_greet", "/api/v1/remote_count"]
)


@on_request("/user/greet")
async def greet(name: str) -> str:
    return str(await call_plugin_api("/api/v1/remote_greet", name=name, times=2))


@on_request("/user/count")
async def count(n: int) -> list[Any]:
    return [item async for item in await call_plugin_api("/api/v1/remote_count", n=n)]


@on_request("/user/summarize")
async def user_summarize() -> dict[str, Any]:
    result = await summarize(
        items=[1, 2, 3], when=datetime(2026, 1, 2, 3, 4, 5), blob=b"\x00\x01\xfe", point=Point(x=1, y=2)
    )
    return {"type": type(result).__name__, "later_type": type(result.later).__name__, **result.model_dump(mode="json")}
