from framex.plugin import BasePlugin, PluginMetadata, on_register, on_request
from tests.fixture_plugins.order_log import events

__plugin_meta__ = PluginMetadata(name="second", priority=5)


@on_register()
class Hooks(BasePlugin):
    async def on_start(self) -> None:
        events.append("start second")

    async def on_stop(self) -> None:
        events.append("stop second")

    @on_request("/ordered/second")
    async def ping(self) -> str:
        return "second"
