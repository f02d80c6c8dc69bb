"""Plain FastAPI serving ``bench.request_path``'s routes as a FastAPI user writes them.

Blocking work goes through Starlette's ``run_in_threadpool``, whose thread limiter gets
``BENCH_MAX_WORKERS`` tokens (default 32, the size of FrameX's local pool) so both apps
have the same ceiling.
"""

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from bench.apps.order import Order, summary

MAX_WORKERS = int(os.environ.get("BENCH_MAX_WORKERS", "32"))


def sleep_job(ms: int) -> int:
    """Block the calling thread for ``ms`` milliseconds."""
    time.sleep(ms / 1000)
    return ms


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Raise anyio's default limiter (40 threads) to the pool size FrameX has."""
    # The limiter belongs to the running loop, so it can only be sized from inside it.
    anyio.to_thread.current_default_thread_limiter().total_tokens = MAX_WORKERS
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/api/v1/q")
async def q(x: int) -> dict[str, int]:
    """Echo one validated query parameter."""
    return {"x": x}


@app.post("/api/v1/order")
async def post_order(order: Order) -> dict[str, object]:
    """Validate a JSON body into ``Order`` and answer with its summary."""
    return summary(order)


@app.get("/api/v1/blocking")
async def blocking(ms: int = 50) -> int:
    """Run ``sleep_job`` on a worker thread."""
    return await run_in_threadpool(sleep_job, ms)
