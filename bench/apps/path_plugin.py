"""The FrameX plugin of ``bench.request_path``: one validated query parameter, a JSON body
model, a blocking ``@remote`` job, and what the benchmark reads about the server's features."""

import logging
import time
from typing import Any

from bench.apps.order import Order, summary
from framex.context import get_container
from framex.plugin import PluginMetadata, on_request, remote

__plugin_meta__ = PluginMetadata(name="path_plugin")


@remote()
def sleep_job(ms: int) -> int:
    """Block the calling (pool) thread for ``ms`` milliseconds."""
    time.sleep(ms / 1000)
    return ms


@on_request("/q")
async def q(x: int) -> dict[str, int]:
    """Echo one validated query parameter."""
    return {"x": x}


@on_request("/order", methods=["POST"])
async def post_order(order: Order) -> dict[str, object]:
    """Validate a JSON body into ``Order`` and answer with its summary."""
    return summary(order)


@on_request("/blocking")
async def blocking(ms: int = 50) -> int:
    """Await ``sleep_job`` on the local adapter's thread pool."""
    result: int = await sleep_job.remote(ms)
    return result


@on_request("/features")
async def features() -> dict[str, Any]:
    """Which per-request features this server has on, as the benchmark reports them.

    Read from the container rather than assumed: the settings are FrameX's defaults, and
    whether access-log records are made depends on the logging uvicorn set up too.
    """
    container = get_container()
    settings = container.settings()
    # `compiled_routes` is a provider of the newer builds only; older ones have no compiled path.
    provider = getattr(container, "compiled_routes", None)
    compiled = provider() if provider is not None else None
    return {
        "watchdog_ms": settings.server.loop_block_warn_ms,
        "access_log": settings.log.access_log,
        "access_log_records": settings.log.access_log and logging.getLogger("framex.access").isEnabledFor(logging.INFO),
        "console": settings.console.enabled,
        "metrics": settings.metrics.enabled,
        "tracing": settings.tracing.enabled,
        "cache": settings.cache.enabled,
        "auth_rules": len(settings.auth.rules),
        "compiled_routes": getattr(settings.server, "compiled_routes", None),
        "compiled_path": compiled is not None,
        "compiled": compiled.count if compiled is not None and compiled.enabled else 0,
        "fallbacks": dict(compiled.fallbacks) if compiled is not None else {},
    }
