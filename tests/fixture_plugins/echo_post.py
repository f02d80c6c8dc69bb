"""Serves POST on the path where the built-in echo plugin serves GET."""

from framex.plugin import PluginMetadata, on_request

__plugin_meta__ = PluginMetadata(name="echo_post")


@on_request("/echo", methods=["POST"])
async def echo_post(message: str) -> str:
    return message
