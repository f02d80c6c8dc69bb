"""The second plugin of ``bench.request_path``: the same API reached through
``call_plugin_api`` and by awaiting its function directly."""

from bench.apps.path_plugin import q
from framex.plugin import PluginMetadata, call_plugin_api, on_request

__plugin_meta__ = PluginMetadata(name="path_caller", required_remote_apis=["/q"])


@on_request("/call")
async def call() -> dict[str, int]:
    """Call ``path_plugin``'s ``/q`` by its path, in-process."""
    result: dict[str, int] = await call_plugin_api("/api/v1/q", x=5)
    return result


@on_request("/direct")
async def direct() -> dict[str, int]:
    """What the call is without a framework: await the other handler."""
    return await q(5)
