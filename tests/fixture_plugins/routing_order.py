"""Routes whose order decides who serves a path: a templated route before a fixed one it covers."""

from fastapi import HTTPException

from framex.plugin import PluginMetadata, on_request

__plugin_meta__ = PluginMetadata(name="routing_order")


@on_request("/order/{name}")
async def by_name(name: str) -> dict[str, str]:
    return {"route": "templated", "name": name}


@on_request("/order/fixed")
async def fixed() -> dict[str, str]:
    return {"route": "fixed"}


@on_request("/order/fixed", methods=["POST"])
async def fixed_post(size: int = 1) -> dict[str, object]:
    return {"route": "fixed-post", "size": size}


@on_request("/teapot")
async def teapot() -> None:
    raise HTTPException(418, "short and stout")
