from framex.plugin import BasePlugin, PluginMetadata, on_register, on_request
from tests.fixture_plugins.order_log import events

__plugin_meta__ = PluginMetadata(name="first", priority=0)


@on_register()
class Hooks(BasePlugin):
    async def on_start(self) -> None:
        events.append("start first")

    async def on_stop(self) -> None:
        events.append("stop first")

    @on_request("/ordered/first")
    async def ping(self) -> str:
        return "first"
