"""The vectorized job of ``bench.batching``, batched and not, and the routes that call it.

``vector_job(items)`` costs a fixed 5 ms plus 20 µs per item, like a model's forward pass:
a sleep (the fixed cost: a kernel launch, a session call) followed by a Python loop (the
per-item work), both while holding the process's one "device", so executions in one
process take turns as they would on one accelerator or one inference session. On Ray each
task worker is a process of its own, with its own device.

Served by ``framex run`` or ``bench/apps/framex_app.py`` (``BENCH_PLUGINS``), the plugin has
``GET /api/v1/trivial`` (readiness), ``GET /api/v1/batched?x=1`` (``await batched.remote(x)``)
and ``GET /api/v1/single?x=1`` (``await single.remote(x)``). The hand-written Ray Serve peer,
``bench/apps/serve_batch_app.py``, runs the same ``vector_job`` with the same batch size and wait.
"""

import threading
import time

from framex.plugin import PluginMetadata, on_request, remote

__plugin_meta__ = PluginMetadata(name="bench_batch_plugin")

BATCH_SIZE = 32
BATCH_WAIT_MS = 5.0
FIXED_S = 0.005
"""The cost of one execution, whatever its size."""
PER_ITEM_S = 20e-6
"""The cost of each item in it."""
_DEVICE = threading.Lock()


def vector_job(items: list[int]) -> list[int]:
    """``x + 1`` for every item, at a cost of ``FIXED_S + PER_ITEM_S * len(items)`` on this process's device."""
    with _DEVICE:
        time.sleep(FIXED_S)
        end = time.perf_counter() + PER_ITEM_S * len(items)
        while time.perf_counter() < end:
            pass
    return [x + 1 for x in items]


@remote(batch_size=BATCH_SIZE, batch_wait_ms=BATCH_WAIT_MS)
def batched(items: list[int]) -> list[int]:
    """Concurrent callers' items in one execution."""
    return vector_job(items)


@remote()
def single(x: int) -> int:
    """One execution per call."""
    return vector_job([x])[0]


@on_request("/trivial")
async def trivial() -> dict[str, bool]:
    """Readiness."""
    return {"ok": True}


@on_request("/batched")
async def batched_route(x: int) -> int:
    """The request's item, computed in a batch with the other requests' items."""
    result: int = await batched.remote(x)
    return result


@on_request("/single")
async def single_route(x: int) -> int:
    """The request's item, computed alone."""
    result: int = await single.remote(x)
    return result
