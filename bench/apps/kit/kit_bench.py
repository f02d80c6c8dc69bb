"""FrameX-kit's version of ``bench_plugin``: a trivial route and a route awaiting a blocking ``@remote`` job."""

import time

from framex.plugin import BasePlugin, PluginMetadata, on_register, on_request, remote

__plugin_meta__ = PluginMetadata(
    name="kit_bench",
    version="1.0.0",
    description="The trivial and blocking routes of the FrameX benchmarks.",
    author="FrameX benchmarks",
    url="https://example.invalid/kit_bench",
)


@remote()
def blocking_job(ms: int) -> int:
    """Block the calling thread for ``ms`` milliseconds."""
    time.sleep(ms / 1000)
    return ms


@on_register()
class KitBenchPlugin(BasePlugin):
    """FrameX-kit serves HTTP APIs from methods of a registered class only."""

    @on_request("/trivial")
    async def trivial(self) -> dict[str, bool]:
        """Answer at once."""
        return {"ok": True}

    @on_request("/blocking")
    async def blocking(self, ms: int = 50) -> int:
        """Await ``blocking_job`` through FrameX-kit's local ``@remote``."""
        result: int = await blocking_job.remote(ms)
        return result
