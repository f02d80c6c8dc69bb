"""A route whose work is batched across concurrent requests."""

from __future__ import annotations

from framex.plugin import PluginMetadata, on_request, remote

__plugin_meta__ = PluginMetadata(name="batched", version="1.0.0")


@remote(batch_size=32, batch_wait_ms=20)
def squares(items: list[int]) -> list[dict[str, int]]:
    """One execution for many requests: each answer says how many shared it."""
    return [{"square": x * x, "batch": len(items)} for x in items]


@on_request("/batched/square")
async def square(x: int) -> dict[str, int]:
    result: dict[str, int] = await squares.remote(x)
    return result
