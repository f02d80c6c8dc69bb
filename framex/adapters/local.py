"""The in-process backend: async work on the event loop, sync work on a bounded thread pool."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from framex.remote import RemoteFunction


class LocalAdapter:
    """Runs ``@remote`` work in this process.

    Sync functions run on a thread pool of ``max_workers`` threads with the caller's
    contextvars; there is no lock, so N blocking jobs run N-wide up to the pool size.
    """

    name = "local"

    def __init__(self, max_workers: int = 32) -> None:
        self.max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def pool(self) -> ThreadPoolExecutor:
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="framex-remote")
                pool = self._pool
        return pool

    async def call(self, fn: RemoteFunction[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if fn.is_async:
            return await fn.func(*args, **kwargs)
        ctx = contextvars.copy_context()
        job = functools.partial(ctx.run, fn.func, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.pool, job)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def __repr__(self) -> str:
        return f"LocalAdapter(max_workers={self.max_workers})"
