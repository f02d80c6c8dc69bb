"""A plugin whose route uses ``Depends``: the compiler leaves it to FastAPI's path."""

from typing import Annotated

from fastapi import Depends

from framex.plugin import PluginMetadata, on_request

__plugin_meta__ = PluginMetadata(name="depends_route")


def page_size(size: int = 10) -> int:
    return min(size, 100)


@on_request("/depends/items")
async def items(size: Annotated[int, Depends(page_size)]) -> dict[str, int]:
    return {"size": size}


@on_request("/depends/plain")
async def plain(size: int = 10) -> dict[str, int]:
    return {"size": size}
