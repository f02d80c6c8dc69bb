"""Serves a path that `collection.alpha` already serves."""

from framex.plugin import PluginMetadata, on_request

__plugin_meta__ = PluginMetadata(name="route_clash")


@on_request("/api/v1/alpha")
async def alpha_again() -> str:
    return "clash"
