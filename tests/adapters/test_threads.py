"""The local backend's thread pool: jobs, cancellation, closing, dropping, interpreter exit."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from framex.adapters.threads import ThreadPool
from framex.container import Container, close_container, create_container, use_container
from framex.plugin import remote

ROOT = Path(__file__).resolve().parent.parent.parent

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")


def hold(started: threading.Event, release: threading.Event, result: str = "held") -> str:
    started.set()
    if not release.wait(10):
        raise TimeoutError("never released")
    return result


async def test_results_errors_and_the_callers_context() -> None:
    pool = ThreadPool(2, "test-pool")
    try:
        assert await pool.run(divmod, 7, 2) == (3, 1)
        with pytest.raises(ZeroDivisionError):
            await pool.run(divmod, 1, 0)
        marker.set("caller")
        ctx = contextvars.copy_context()
        assert await pool.run(ctx.run, marker.get) == "caller"
        assert await pool.run(marker.get) == "unset"  # without the context, the thread's own
        assert (await pool.run(threading.current_thread)).name.startswith("test-pool_")
    finally:
        pool.close()


async def test_stop_iteration_becomes_a_runtime_error() -> None:
    pool = ThreadPool(1, "test-pool")
    try:
        with pytest.raises(RuntimeError, match="raised StopIteration") as failed:
            await pool.run(next, iter(()))
        assert isinstance(failed.value.__cause__, StopIteration)
    finally:
        pool.close()


async def test_a_job_cancelled_before_a_thread_takes_it_never_runs() -> None:
    pool = ThreadPool(1, "test-pool")
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []
    try:
        held = pool.run(hold, started, release)
        assert started.wait(10)
        waiting = pool.run(ran.append, "cancelled job")
        assert pool.counts() == (1, 1, 1)
        waiting.cancel()
        release.set()
        assert await held == "held"
        # One thread takes jobs in order: this one comes after the cancelled one.
        await pool.run(ran.append, "next job")
        assert ran == ["next job"]
        assert pool.counts() == (1, 0, 0)
    finally:
        pool.close()


def meet(barrier: threading.Barrier) -> str:
    barrier.wait()
    return threading.current_thread().name


async def test_threads_start_as_jobs_need_them_up_to_the_size() -> None:
    pool = ThreadPool(3, "test-pool")
    barrier = threading.Barrier(3, timeout=10)
    try:
        # Three jobs waiting for each other: each needs a thread of its own.
        names = await asyncio.gather(*(pool.run(meet, barrier) for _ in range(3)))
        assert len(set(names)) == 3
        assert pool.counts().started == 3
        for _ in range(10):
            await pool.run(int)
        assert pool.counts() == (3, 0, 0)
    finally:
        pool.close()


async def test_closing_cancels_queued_jobs_lets_running_ones_finish_and_refuses_new_ones() -> None:
    pool = ThreadPool(1, "test-pool")
    started, release = threading.Event(), threading.Event()
    held = pool.run(hold, started, release)
    assert started.wait(10)
    queued = pool.run(int)
    pool.close()
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.run(int)
    with pytest.raises(asyncio.CancelledError):
        await queued
    release.set()
    assert await held == "held"


async def test_a_dropped_pool_ends_its_threads() -> None:
    pool = ThreadPool(1, "test-pool")
    thread = await pool.run(threading.current_thread)
    del pool
    gc.collect()
    thread.join(10)
    assert not thread.is_alive()


def test_at_exit_running_and_queued_jobs_finish(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, atexit, threading
        from pathlib import Path
        from framex.adapters.threads import ThreadPool

        out = Path({str(tmp_path)!r})
        started, release = threading.Event(), threading.Event()

        def job(name):
            started.set()
            release.wait(10)
            (out / name).write_text("done")

        # Registered after FrameX's handler, so it runs before it: the jobs are still running then.
        atexit.register(release.set)

        async def main():
            pool = ThreadPool(1, "exit-pool")
            pool.run(job, "running")
            pool.run(job, "queued")
            started.wait(10)

        asyncio.run(main())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["queued", "running"]


async def test_remote_calls_use_the_pool_and_cancelling_a_queued_call_skips_it() -> None:
    container: Container = create_container(None, local__max_workers=1, load_builtin_plugins=[], load_plugins=[])
    started, release = threading.Event(), threading.Event()
    ran: list[int] = []

    @remote()
    def record(i: int) -> int:
        ran.append(i)
        return i

    try:
        with use_container(container):
            held = asyncio.ensure_future(remote()(hold).remote(started, release))
            assert await asyncio.to_thread(started.wait, 10)
            skipped = asyncio.ensure_future(record.remote(1))
            await asyncio.sleep(0)  # one step of the new task: it hands its job to the pool
            assert container.adapter().pool.counts().queued == 1
            skipped.cancel()
            release.set()
            assert await held == "held"
            assert await record.remote(2) == 2
            assert ran == [2]
            with pytest.raises(asyncio.CancelledError):
                await skipped
    finally:
        close_container(container)
