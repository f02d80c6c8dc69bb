"""A plugin whose on_start raises."""

from framex.plugin import BasePlugin, PluginMetadata, on_register, on_request

__plugin_meta__ = PluginMetadata(name="failing_start")


@on_register()
class FailingPlugin(BasePlugin):
    async def on_start(self) -> None:
        raise ConnectionError("cannot reach the model store")

    @on_request("/failing/x")
    async def x(self) -> int:
        return 1
