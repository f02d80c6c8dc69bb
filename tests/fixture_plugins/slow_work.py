"""A slow request whose `@remote` job is still running when the server is told to stop."""

from __future__ import annotations

import os
import time
from pathlib import Path

from framex.plugin import BasePlugin, PluginMetadata, on_register, on_request, remote

__plugin_meta__ = PluginMetadata(name="slow_work")

_started = 0


@remote()
def long_job(seconds: float) -> str:
    time.sleep(seconds)  # the work a graceful shutdown must wait for
    return "finished"


@on_register()
class SlowWork(BasePlugin):
    @on_request("/slow_work/run")
    async def run(self, seconds: float = 2.0) -> str:
        global _started
        _started += 1
        return await long_job.remote(seconds)

    @on_request("/slow_work/started")
    async def started(self) -> int:
        return _started

    async def on_stop(self) -> None:
        marker = os.environ.get("SLOW_WORK_STOP_MARKER")
        if marker:
            Path(marker).write_text("stopped")
