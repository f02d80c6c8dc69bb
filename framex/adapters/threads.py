"""The local backend's thread pool: sync work handed from an event loop to threads and back.

A job is one hand-over to a thread (a queue) and one call back to its loop with the
result (``call_soon_threadsafe``): no ``concurrent.futures`` future, no second asyncio
future chained to it, no Python-level locks on the way. That is most of what a thread
round trip costs the loop besides the wake-ups themselves (``bench/remote_dispatch.py``).

Threads start as jobs need them, up to ``size``, and stay until the pool is closed or
dropped. A job whose caller stopped waiting before a thread took it is skipped. At
interpreter exit the threads finish the jobs they hold and those queued, then end, as
``concurrent.futures`` threads do.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")

Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class PoolCounts(NamedTuple):
    """Threads started, threads holding a job, and jobs waiting for a thread, at one moment."""

    started: int
    busy: int
    queued: int


class ThreadPool:
    """At most ``size`` threads running jobs for event loops; threads are named ``<name>_<n>``."""

    def __init__(self, size: int, name: str) -> None:
        if size < 1:
            raise ValueError(f"a thread pool needs at least one thread, not {size}")
        self.size = size
        self._workers = _Workers(size, name)
        # The threads hold the workers, not the pool: a pool nobody closed still ends
        # its threads once it is dropped.
        weakref.finalize(self, self._workers.stop)

    def run(self, func: Callable[..., T], /, *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """``func(*args, **kwargs)`` on a pool thread: the future of its result on the running loop.

        Cancelling the future before a thread takes the job means it never runs. The
        function runs in whatever context the thread has: pass ``ctx.run`` and the
        function to run it in a copy of the caller's (``contextvars.copy_context()``).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._workers.put((loop, future, func, args, kwargs))
        return future

    def counts(self) -> PoolCounts:
        """What the pool is doing now (a moment's view: jobs being handed over may count either way)."""
        return self._workers.counts()

    def close(self) -> None:
        """Refuse new jobs, cancel those waiting for a thread and end the threads once their
        jobs are done (without waiting for them)."""
        self._workers.stop(cancel_queued=True)


class _Workers:
    """The threads of one pool and what they share."""

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self.name = name
        self.jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.idle = 0
        """Threads waiting for a job with none on its way to them."""
        self.backlog = 0
        """Jobs queued while every thread was busy and the pool full: the next threads to finish take them."""
        self.stopped = False

    def put(self, job: Job) -> None:
        with self.lock:
            if self.stopped:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self.jobs.put(job)
            if self.idle:
                self.idle -= 1  # a waiting thread takes it
            elif len(self.threads) < self.size:
                # No thread is free and the pool may grow: this job gets a thread of its own,
                # so jobs waiting on each other never wait for a thread the pool could start.
                thread = threading.Thread(target=self.work, name=f"{self.name}_{len(self.threads)}", daemon=True)
                self.threads.append(thread)
                thread.start()
                _running.add(self)
            else:
                self.backlog += 1

    def work(self) -> None:
        jobs = self.jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            loop, future, func, args, kwargs = job
            del job
            ran = not future.cancelled()
            result: Any = None
            error: BaseException | None = None
            if ran:
                try:
                    result = func(*args, **kwargs)
                except BaseException as exc:
                    error = exc
            # Free before the caller hears: whoever sees the result sees this thread's new state.
            with self.lock:
                if self.backlog:
                    self.backlog -= 1  # its next job is waiting already
                else:
                    self.idle += 1
            if ran:
                _deliver(loop, future, result, error)
            del loop, future, func, args, kwargs, result, error

    def counts(self) -> PoolCounts:
        with self.lock:
            # A thread with a job on its way counts as busy, and its job as queued until it takes it.
            started = len(self.threads)
            return PoolCounts(started, started - self.idle, self.jobs.qsize())

    def stop(self, cancel_queued: bool = False, wait: bool = False) -> None:
        with self.lock:
            self.stopped = True
            threads = list(self.threads)
        if cancel_queued:
            while True:
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    _cancel(job[0], job[1])
        for _ in threads:
            self.jobs.put(None)  # after the jobs still queued: each thread ends with the next one it takes
        if wait:
            for thread in threads:
                thread.join()


def _deliver(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], result: Any, error: BaseException | None
) -> None:
    """Settle ``future`` on its loop with ``result``, or with ``error`` when not None."""
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for this result any more
        loop.call_soon_threadsafe(_settle, future, result, error)


def _cancel(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(future.cancel)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return  # cancelled meanwhile
    if error is None:
        future.set_result(result)
    elif isinstance(error, StopIteration):
        # A future cannot hold StopIteration (it would end the awaiting coroutine instead).
        failed = RuntimeError("the function raised StopIteration")
        failed.__cause__ = error
        future.set_exception(failed)
    else:
        future.set_exception(error)


_running: weakref.WeakSet[_Workers] = weakref.WeakSet()
"""Pools that started threads, for the exit handler; an entry lasts while its threads run."""


@atexit.register
def _finish_at_exit() -> None:
    # The threads are daemons so that interpreter shutdown never waits on an idle one;
    # those with work finish it here, before the interpreter stops them.
    for workers in list(_running):
        workers.stop(wait=True)
