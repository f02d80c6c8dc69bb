"""What ``python -m bench`` serves besides ``bench_plugin``: a cross-plugin call and a job in a worker process."""

import time

from framex.plugin import PluginMetadata, call_plugin_api, on_request, remote

__plugin_meta__ = PluginMetadata(name="suite_plugin", required_remote_apis=["/trivial"])


@remote(executor="process")
def process_job(ms: int) -> int:
    """Block a worker process of the local adapter's process pool for ``ms`` milliseconds."""
    time.sleep(ms / 1000)
    return ms


@on_request("/call")
async def call() -> dict[str, bool]:
    """Call ``bench_plugin``'s trivial API by its path, in-process."""
    result: dict[str, bool] = await call_plugin_api("/api/v1/trivial")
    return result


@on_request("/blocking_process")
async def blocking_process(ms: int = 50) -> int:
    """Run ``process_job`` on the process pool."""
    result: int = await process_job.remote(ms)
    return result
