"""Reports which container and backend serve it."""

from __future__ import annotations

from framex import get_container
from framex.plugin import BasePlugin, PluginMetadata, on_register, on_request, remote

__plugin_meta__ = PluginMetadata(name="introspect")


@remote()
def where() -> str:
    return "ran"


@on_register()
class Introspect(BasePlugin):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.started = False

    async def on_start(self) -> None:
        self.started = True

    @on_request("/introspect")
    async def introspect(self) -> dict[str, object]:
        container = get_container()
        return {
            "title": container.settings().server.title,
            "adapter": type(container.adapter()).__name__,
            "plugins": sorted(container.registry().plugins),
            "started": self.started,
            "job": await where.remote(),
        }
