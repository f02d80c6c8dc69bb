"""The FrameX plugin under benchmark: a trivial route and a route that blocks a pool thread."""

import time

from framex.plugin import PluginMetadata, on_request, remote

__plugin_meta__ = PluginMetadata(name="bench_plugin")


@remote()
def blocking_job(ms: int) -> int:
    """Block the calling (pool) thread for ``ms`` milliseconds."""
    time.sleep(ms / 1000)
    return ms


@on_request("/trivial", raw_response=False)
async def trivial() -> dict[str, bool]:
    """Answer at once: measures the framework's per-request overhead."""
    return {"ok": True}


@on_request("/blocking")
async def blocking(ms: int = 50) -> int:
    """Run ``blocking_job`` through the local adapter's thread pool."""
    result: int = await blocking_job.remote(ms)
    return result
