"""Plain FastAPI serving the same two handlers as ``bench_plugin``, at the same paths.

The blocking job runs on a thread pool of ``BENCH_MAX_WORKERS`` threads (default 32),
the same size as FrameX's local adapter pool, so both apps have the same ceiling.
"""

import asyncio
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI

MAX_WORKERS = int(os.environ.get("BENCH_MAX_WORKERS", "32"))
_pool = ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="bench-blocking")


def blocking_job(ms: int) -> int:
    """Block the calling (pool) thread for ``ms`` milliseconds."""
    time.sleep(ms / 1000)
    return ms


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Release the pool when the server stops."""
    try:
        yield
    finally:
        _pool.shutdown(wait=False, cancel_futures=True)


app = FastAPI(lifespan=lifespan)


@app.get("/api/v1/trivial")
async def trivial() -> dict[str, bool]:
    """Answer at once."""
    return {"ok": True}


@app.get("/api/v1/blocking")
async def blocking(ms: int = 50) -> int:
    """Run ``blocking_job`` on the pool."""
    return await asyncio.get_running_loop().run_in_executor(_pool, blocking_job, ms)
