"""FrameX-kit's version of the suite's cross-plugin call: ``/call`` calls ``kit_bench``'s trivial API."""

from framex.plugin import BasePlugin, PluginMetadata, on_register, on_request

__plugin_meta__ = PluginMetadata(
    name="kit_caller",
    version="1.0.0",
    description="Calls another plugin's API.",
    author="FrameX benchmarks",
    url="https://example.invalid/kit_caller",
    required_remote_apis=["/api/v1/trivial"],
)


@on_register()
class KitCallerPlugin(BasePlugin):
    """The caller plugin."""

    @on_request("/call")
    async def call(self) -> dict[str, bool]:
        """Call the trivial API the way FrameX-kit documents it."""
        result: dict[str, bool] = await self._call_remote_api("/api/v1/trivial")
        return result
