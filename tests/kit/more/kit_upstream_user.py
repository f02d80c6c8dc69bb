"""A FrameX-kit-shaped class plugin that needs an API only a proxy upstream serves."""

from typing import Any

from framex.consts import VERSION
from framex.plugin import BasePlugin, PluginMetadata, on_register, on_request

__plugin_meta__ = PluginMetadata(
    name="kit_upstream_user",
    version=VERSION,
    description="Calls an upstream API through the proxy.",
    author="tests",
    url="https://example.invalid/kit_upstream_user",
    required_remote_apis=["/api/v1/private"],
)


@on_register()
class UpstreamUserPlugin(BasePlugin):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    @on_request("/kit/upstream", methods=["GET"])
    async def upstream(self) -> Any:
        return await self._call_remote_api("/api/v1/private")
