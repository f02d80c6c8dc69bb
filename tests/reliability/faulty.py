"""A plugin whose ``@remote`` work can kill the worker process running it (the fault tests).

``die`` and ``work`` run on the process pool under the local backend and as Ray tasks
under the Ray backend (where ``executor`` is ignored).
"""

from __future__ import annotations

import os

from framex.plugin import PluginMetadata, on_request, remote

__plugin_meta__ = PluginMetadata(name="faulty", version="1.0.0", description="Work that can kill its worker.")


@remote(executor="process")
def die(code: int = 3) -> None:
    """Ends the worker process at once, as a crash in native code or an OOM kill would."""
    os._exit(code)


@remote(executor="process")
def work(x: int) -> dict[str, int]:
    return {"x": x * 3, "pid": os.getpid()}


@on_request("/faulty/die")
async def crash() -> None:
    await die.remote()


@on_request("/faulty/work")
async def run_work(x: int) -> dict[str, int]:
    return await work.remote(x)
