from framex.plugin import PluginMetadata, on_request

__plugin_meta__ = PluginMetadata(name="alpha")


@on_request("/alpha")
async def alpha() -> str:
    return "alpha"
