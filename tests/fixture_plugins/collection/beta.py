from framex.plugin import PluginMetadata, on_request

__plugin_meta__ = PluginMetadata(name="beta")


@on_request("/beta")
async def beta() -> str:
    return "beta"
