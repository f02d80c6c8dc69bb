"""The in-process backend: async work on the event loop, sync work on a bounded pool.

Sync functions run on a thread pool (``local.max_workers``) with the caller's
contextvars, or, with ``executor="process"``, on a process pool
(``local.max_processes``) so CPU-bound Python uses every core. There is no lock: N
blocking jobs run N-wide up to the pool size.
"""

from __future__ import annotations

import asyncio
import contextvars
import multiprocessing
import os
import pickle
import threading
from collections.abc import AsyncGenerator, Awaitable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from framex.adapters.calls import call_by_reference, call_carried, reference
from framex.adapters.carry import WorkerSetup, carry
from framex.adapters.threads import ThreadPool
from framex.errors import RemoteError

if TYPE_CHECKING:
    from framex.adapters.base import Adapter
    from framex.remote import RemoteFunction
    from framex.tracing import Tracing

_NO_SETUP = WorkerSetup(None, None)

_DONE = object()


@dataclass(frozen=True)
class PoolUse:
    """A pool at one moment: its size, workers started, busy, and jobs waiting for one."""

    size: int
    started: int
    busy: int
    queued: int


def _next(items: Iterator[Any]) -> Any:
    return next(items, _DONE)


class LocalAdapter:
    """Runs ``@remote`` work in this process (threads) or in local worker processes."""

    name = "local"
    retries_tasks = False

    def __init__(
        self,
        max_workers: int = 32,
        executor: Literal["thread", "process"] = "thread",
        max_processes: int | None = None,
        tracing: Tracing | None = None,
        worker_setup: WorkerSetup = _NO_SETUP,
    ) -> None:
        self.max_workers = max_workers
        self.tracing = tracing
        """The service's tracing (None: off): work spans in threads, trace context to processes."""
        self.worker_setup = worker_setup
        """How worker processes log and trace (the service's settings)."""
        self.executor = executor
        self.max_processes = max_processes or os.cpu_count() or 1
        self._pool: ThreadPool | None = None
        self._processes: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def pool(self) -> ThreadPool:
        """The thread pool of sync work, started on first use."""
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPool(self.max_workers, "framex-remote")
                pool = self._pool
        return pool

    @property
    def processes(self) -> ProcessPoolExecutor:
        pool = self._processes
        if pool is None:
            with self._lock:
                if self._processes is None:
                    # forkserver: workers do not inherit this process's threads (uvicorn,
                    # the thread pool), which `fork` would copy mid-flight.
                    context = multiprocessing.get_context("forkserver")
                    self._processes = ProcessPoolExecutor(self.max_processes, mp_context=context)
                pool = self._processes
        return pool

    def _warn_ignored(self, fn: RemoteFunction[..., Any]) -> None:
        if fn.opts.ray_resources:
            fn.warn_once(
                f"`{fn.func.__qualname__}`: {', '.join(fn.opts.ray_resources)} are Ray task resources; the local "
                "backend ignores them."
            )

    def call(self, fn: RemoteFunction[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Awaitable[Any]:
        """Start ``fn`` and return what to await for its result.

        Sync work is on the pool once this returns: the awaitable is the pool's future
        itself, and an async function's own coroutine is returned as it is, so a call
        costs no coroutine of this adapter's (cancelling the await before a thread takes
        the job still means it never runs).
        """
        if fn.opts.ray_resources:
            self._warn_ignored(fn)
        executor = fn.opts.executor
        # An async function runs on the loop unless it asks for a process itself.
        if executor == "process" or (executor is None and not fn.is_async and self.executor == "process"):
            return self._in_process(fn, args, kwargs)
        tracing = self.tracing
        if tracing is not None and tracing.unsampled():
            tracing = None  # no work span to make; the context goes along as it is
        if fn.is_async:
            if tracing is None:
                awaitable: Awaitable[Any] = fn.func(*args, **kwargs)
                return awaitable
            return _traced_coroutine(tracing, fn, args, kwargs)
        pool = self._pool or self.pool
        if tracing is None:
            return pool.run(contextvars.copy_context().run, fn.func, *args, **kwargs)
        return pool.run(contextvars.copy_context().run, _traced_job, tracing, fn, args, kwargs)

    async def call_many(
        self, fn: RemoteFunction[..., Any], calls: list[tuple[Any, ...]], return_exceptions: bool
    ) -> list[Any]:
        """Every call at once (on the loop, the pool or the processes, as :meth:`call` runs one)."""
        return list(
            await asyncio.gather(*(self._awaited(fn, args) for args in calls), return_exceptions=return_exceptions)
        )

    async def _awaited(self, fn: RemoteFunction[..., Any], args: tuple[Any, ...]) -> Any:
        # One task per item, as with any coroutine: a job the pool refuses fails its own item.
        return await self.call(fn, args, {})

    async def _in_process(self, fn: RemoteFunction[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        name = fn.func.__qualname__
        pool = self.processes
        carried = carry(self.tracing, self.worker_setup, "process")
        job: tuple[Any, ...] = (
            (call_by_reference, reference(fn), args, kwargs)
            if carried is None
            else (call_carried, carried, reference(fn), args, kwargs)
        )
        try:
            future: Future[Any] = pool.submit(*job)
        except BrokenProcessPool:
            self._reset_processes(pool)
            pool = self.processes
            future = pool.submit(*job)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()  # a job not started yet never runs
            raise
        except BrokenProcessPool as exc:
            self._reset_processes(pool)
            raise RemoteError(
                f"`{name}` did not finish: the worker process running it died, or another worker of the pool did "
                "(a dying worker fails every call in flight on the pool). The pool was restarted; check for crashes "
                "in native code or a process being killed (out of memory)."
            ) from exc
        except Exception as exc:
            if _failed_to_send(exc):
                raise RemoteError(
                    f"`{name}` could not be sent to a worker process: {type(exc).__name__}: {exc}. Arguments and "
                    "results must be picklable (and the function importable); or use `executor='thread'`."
                ) from exc
            raise

    def _reset_processes(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._processes is broken:
                self._processes = None
        broken.shutdown(wait=False, cancel_futures=True)

    async def stream(
        self, fn: RemoteFunction[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> AsyncGenerator[Any, None]:
        """Items of a generator function as they are produced; closing stops the producer."""
        if fn.opts.ray_resources:
            self._warn_ignored(fn)
        if fn.is_async_gen:
            agen = fn.func(*args, **kwargs)
            try:
                async for item in agen:
                    yield item
            finally:
                await agen.aclose()
            return
        gen = fn.func(*args, **kwargs)
        pool = self.pool
        ctx = contextvars.copy_context()
        try:
            while True:
                # One step per pool round trip: items arrive while the generator runs,
                # and nothing runs ahead of the consumer.
                item = await pool.run(ctx.run, _next, gen)
                if item is _DONE:
                    return
                yield item
        finally:
            await pool.run(ctx.run, gen.close)

    def usage(self) -> dict[str, PoolUse | None]:
        """What the thread and process pools are doing now (None for a pool not started yet).

        Read from the pools' own state (the counts the thread pool keeps to know when to
        start a thread; the process pool's executor), so nothing is counted for this; the
        numbers are a moment's view and may be off by the job being handed over as they are read.
        """
        threads = self._pool
        processes = self._processes
        thread_use = None
        if threads is not None:
            thread_use = PoolUse(self.max_workers, *threads.counts())
        process_use = None
        if processes is not None:
            pending = len(processes._pending_work_items)  # submitted and not finished
            workers = len(processes._processes or {})
            process_use = PoolUse(self.max_processes, workers, min(pending, workers), max(0, pending - workers))
        return {"threads": thread_use, "processes": process_use}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._processes is not None:
            self._processes.shutdown(wait=False, cancel_futures=True)
            self._processes = None

    def __repr__(self) -> str:
        return f"LocalAdapter(max_workers={self.max_workers}, executor={self.executor!r})"


def _work(fn: RemoteFunction[..., Any], executor: str) -> tuple[str, dict[str, Any]]:
    label = fn.func.__qualname__
    return f"work {label}", {"framex.function": label, "framex.executor": executor}


async def _traced_coroutine(
    tracing: Tracing, fn: RemoteFunction[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    with tracing.span(*_work(fn, "loop")):
        return await fn.func(*args, **kwargs)


def _traced_job(tracing: Tracing, fn: RemoteFunction[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # In the pool's thread, in the caller's context: a child of its `.remote()` span.
    with tracing.span(*_work(fn, "thread")):
        return fn.func(*args, **kwargs)


def _failed_to_send(exc: BaseException) -> bool:
    # The pool attaches a traceback text to both kinds of failure; only errors raised
    # by the job itself passed through `call_by_reference` in the worker.
    cause = exc.__cause__
    if type(cause).__name__ == "_RemoteTraceback" and "in call_by_reference" in str(cause):
        return False
    return isinstance(exc, (pickle.PicklingError, AttributeError, TypeError)) and "pickle" in str(exc).lower()


if TYPE_CHECKING:
    _conforms: Adapter = LocalAdapter()  # mypy checks the contract; never runs
