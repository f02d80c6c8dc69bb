"""Plain FastAPI serving the same handlers as ``bench_plugin`` and ``suite_plugin``, at the same paths.

Blocking work goes through ``asyncio.to_thread``; the loop's default executor gets
``BENCH_MAX_WORKERS`` threads (default 32), the size of FrameX's local pool, so both apps
have the same ceiling. The process route uses a ``ProcessPoolExecutor`` of
``BENCH_MAX_PROCESSES`` workers (default: the CPU count, FrameX's default).
"""

import asyncio
import multiprocessing
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI

MAX_WORKERS = int(os.environ.get("BENCH_MAX_WORKERS", "32"))
MAX_PROCESSES = int(os.environ.get("BENCH_MAX_PROCESSES", str(os.cpu_count() or 1)))
# forkserver, as FrameX's process pool: workers do not inherit the server's threads.
_processes = ProcessPoolExecutor(MAX_PROCESSES, mp_context=multiprocessing.get_context("forkserver"))


def blocking_job(ms: int) -> int:
    """Block the calling thread (or worker process) for ``ms`` milliseconds."""
    time.sleep(ms / 1000)
    return ms


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Size the default executor ``asyncio.to_thread`` uses; release the pools at shutdown."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="bench"))
    try:
        yield
    finally:
        _processes.shutdown(wait=False, cancel_futures=True)


app = FastAPI(lifespan=lifespan)


@app.get("/api/v1/trivial")
async def trivial() -> dict[str, bool]:
    """Answer at once."""
    return {"ok": True}


@app.get("/api/v1/blocking")
async def blocking(ms: int = 50) -> int:
    """Run ``blocking_job`` on a thread."""
    return await asyncio.to_thread(blocking_job, ms)


@app.get("/api/v1/blocking_process")
async def blocking_process(ms: int = 50) -> int:
    """Run ``blocking_job`` in a worker process."""
    return await asyncio.get_running_loop().run_in_executor(_processes, blocking_job, ms)


@app.get("/api/v1/call")
async def call() -> dict[str, bool]:
    """What a cross-plugin call is without a framework: a direct call of the other handler."""
    return await trivial()
