"""Which worker process answers, and slow requests that leave a trace of each worker."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

from framex.plugin import BasePlugin, PluginMetadata, on_register, on_request

__plugin_meta__ = PluginMetadata(name="worker_probe", version="2.1.0")


def _trace_dir() -> Path | None:
    folder = os.environ.get("WORKER_PROBE_DIR")
    return Path(folder) if folder else None


@on_register()
class WorkerProbe(BasePlugin):
    @on_request("/worker_probe/pid")
    async def pid(self) -> int:
        return os.getpid()

    @on_request("/worker_probe/slow")
    async def slow(self, seconds: float = 2.0) -> int:
        folder = _trace_dir()
        if folder is not None:
            (folder / f"started.{os.getpid()}.{uuid.uuid4().hex}").touch()
        await asyncio.sleep(seconds)
        return os.getpid()

    async def on_stop(self) -> None:
        folder = _trace_dir()
        if folder is not None:
            (folder / f"stopped.{os.getpid()}").touch()
