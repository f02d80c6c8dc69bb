"""The FrameX plugin ``bench.http_ray`` serves on Ray: a plugin class, so a deployment of its own.

``framex run --adapter ray`` puts ``BenchRayPlugin`` in a Ray Serve deployment behind the
ingress deployment; ``blocking`` runs ``blocking_job`` as a Ray task.
"""

import time

from framex.plugin import BasePlugin, PluginMetadata, on_register, on_request, remote

__plugin_meta__ = PluginMetadata(name="bench_ray_plugin")


@remote()
def blocking_job(ms: int) -> int:
    """Block the Ray worker running this task for ``ms`` milliseconds."""
    time.sleep(ms / 1000)
    return ms


@on_register()
class BenchRayPlugin(BasePlugin):
    """Two routes, reached through the ingress and this class's deployment handle."""

    @on_request("/trivial")
    async def trivial(self) -> dict[str, bool]:
        """Answer at once: measures the per-request cost of the serving path."""
        return {"ok": True}

    @on_request("/blocking")
    async def blocking(self, ms: int = 50) -> int:
        """Await ``blocking_job`` as a Ray task."""
        result: int = await blocking_job.remote(ms)
        return result
