"""`@remote` options and call forms, on every backend (the `backend` fixture)."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from framex.container import Container
from framex.errors import RemoteError, RemoteTimeoutError
from framex.plugin import remote
from framex.remote import DEFAULT_OPTIONS, RemoteFunction, RemoteOptions
from tests import remote_jobs as jobs


class CountingAdapter:
    """Wraps the real backend and records how many calls were in flight at once."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.retries_tasks = getattr(inner, "retries_tasks", False)
        self.running = 0
        self.peak = 0
        self.started: list[tuple[Any, ...]] = []

    async def call(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.started.append(args)
        try:
            return await self.inner.call(fn, args, kwargs)
        finally:
            self.running -= 1

    def stream(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.inner.stream(fn, args, kwargs)

    def close(self) -> None:
        """Nothing of its own."""


@pytest.fixture
def counting(backend: Container) -> Any:
    adapter = CountingAdapter(backend.adapter())
    with backend.adapter.override(adapter):
        yield adapter


def is_ray(container: Container) -> bool:
    return container.settings().adapter == "ray"


# -- timeout -------------------------------------------------------------------------


async def test_timeout_raises_a_timeout_error_naming_the_function(backend: Container) -> None:
    with pytest.raises(RemoteTimeoutError, match=r"`too_slow` did not finish within 0.3 s") as info:
        await jobs.too_slow.remote(1.5)
    assert isinstance(info.value, TimeoutError)


async def test_the_jobs_own_timeout_error_is_not_rewritten(backend: Container) -> None:
    with pytest.raises(TimeoutError, match="the job's own timeout") as info:
        await jobs.raises_timeout.remote()
    assert not isinstance(info.value, RemoteTimeoutError)


# -- retries -------------------------------------------------------------------------


async def test_retries_rerun_until_success(backend: Container, tmp_path: Path) -> None:
    assert await jobs.flaky.remote(tmp_path / "count", 2) == 3


async def test_retries_exhausted_raise_the_last_error(backend: Container, tmp_path: Path) -> None:
    with pytest.raises(ConnectionError, match="attempt 3 failed"):
        await jobs.flaky.remote(tmp_path / "count", 5)
    assert (tmp_path / "count").read_text() == "3"


async def test_other_exceptions_are_not_retried(backend: Container, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="attempt 1: not retried"):
        await jobs.wrong_kind.remote(tmp_path / "count")
    assert (tmp_path / "count").read_text() == "1"


# -- max_concurrency -----------------------------------------------------------------


async def test_max_concurrency_limits_and_keeps_order(counting: CountingAdapter) -> None:
    results = await asyncio.gather(*(jobs.gated.remote(i) for i in range(8)))
    assert results == list(range(8))
    assert counting.peak == 2
    assert counting.started == [(i,) for i in range(8)]


# -- options() -----------------------------------------------------------------------


async def test_options_returns_a_changed_copy(backend: Container) -> None:
    quick = jobs.too_slow.options(timeout=10)
    assert isinstance(quick, RemoteFunction) and quick is not jobs.too_slow
    assert await quick.remote(0.01) == "finished"
    assert jobs.too_slow.opts.timeout == 0.3  # the original is unchanged
    with pytest.raises(TypeError, match="unknown option"):
        jobs.too_slow.options(timout=1)


# -- map / starmap -------------------------------------------------------------------


async def test_map_and_starmap_keep_input_order(backend: Container) -> None:
    assert await jobs.square.map(range(10)) == [x * x for x in range(10)]
    assert await jobs.square.map([]) == []
    assert await jobs.add.starmap([(1, 2), (3, 4), (5, 6)]) == [3, 7, 11]


async def test_map_concurrency_bound(counting: CountingAdapter) -> None:
    assert await jobs.square.map(range(12), concurrency=3) == [x * x for x in range(12)]
    assert counting.peak == 3


async def test_map_errors(backend: Container) -> None:
    with pytest.raises(ValueError, match="negative: -1"):
        await jobs.square.map([1, -1, 2])
    results = await jobs.square.map([1, -1, 2], concurrency=2, return_exceptions=True)
    assert results[0] == 1 and results[2] == 4
    assert isinstance(results[1], ValueError) and str(results[1]) == "negative: -1"


# -- generators ----------------------------------------------------------------------


@pytest.mark.parametrize("job", [jobs.count_up, jobs.acount_up], ids=["sync", "async"])
async def test_generator_items_arrive_while_it_runs(backend: Container, tmp_path: Path, job: Any) -> None:
    handshake = tmp_path / "got-first"
    received = []
    async for item in job.remote(3, handshake):
        received.append(item)
        if item == 0:
            handshake.write_text("ok")  # the producer waits for this before going on
    assert received == [0, 1, 2]


async def test_generator_error_surfaces_at_the_next_item(backend: Container) -> None:
    received = []
    with pytest.raises(ValueError, match="broke after one item"):
        async for item in jobs.fails_midway.remote():
            received.append(item)
    assert received == [1]


async def test_breaking_out_stops_the_producer(backend: Container, tmp_path: Path) -> None:
    marker = tmp_path / "stopped"
    async for item in jobs.endless.remote(marker):
        if item == 2:
            break
    deadline = asyncio.get_running_loop().time() + 30
    while not marker.exists():
        assert asyncio.get_running_loop().time() < deadline, "the producer kept running"
        await asyncio.sleep(0.05)


def test_generators_refuse_call_options() -> None:
    def gen() -> Any:
        yield 1

    with pytest.raises(ValueError, match="generator function: `timeout` and `retries` apply to calls"):
        remote(timeout=1)(gen)
    with pytest.raises(TypeError, match=r"iterate `\.remote"):
        asyncio.run(remote()(gen).map([1]))


# -- resources -----------------------------------------------------------------------


async def test_resources_run_on_ray_and_warn_once_locally(backend: Container, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="framex.remote"):
        assert await jobs.with_resources.map([1, 2, 3]) == [1, 2, 3]
        await jobs.with_resources.remote(4)
    warnings = [r for r in caplog.records if "Ray task resources" in r.getMessage()]
    assert len(warnings) == (0 if is_ray(backend) else 1)


# -- invalid options -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"timeout": -1}, ValueError, r"timeout=-1"),
        ({"timeout": 0}, ValueError, r"timeout=0"),
        ({"timeout": "5"}, ValueError, r"timeout='5'\): give a number of seconds > 0"),
        ({"retries": True}, ValueError, r"retries=True\): give a whole number >= 0"),
        ({"retries": -2}, ValueError, r"retries=-2"),
        ({"retry_on": (int,)}, TypeError, r"retry_on="),
        ({"retry_on": ()}, TypeError, r"retry_on=\(\)\): give exception classes"),
        ({"max_concurrency": 0}, ValueError, r"max_concurrency=0"),
        ({"num_cpus": -1}, ValueError, r"num_cpus=-1"),
        ({"resources": {"gpu": -1}}, ValueError, r"resources="),
        ({"resources": [("gpu", 1)]}, ValueError, r"resources=\[.*\]\): give a mapping"),
        ({"executor": "fiber"}, ValueError, r"executor='fiber'"),
        ({"timeuot": 1}, TypeError, r"unknown option\(s\) timeuot"),
    ],
)
def test_invalid_options_fail_at_decoration(options: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):

        @remote(**options)
        def job() -> None:
            pass


def test_options_are_checked_on_copies_too() -> None:
    with pytest.raises(ValueError, match=r"@remote\(max_concurrency=0\)"):
        jobs.gated.options(max_concurrency=0)


def test_options_keep_what_was_checked() -> None:
    opts = RemoteOptions(retry_on=ConnectionError, num_cpus=1, resources={"disk": 2})
    assert opts.retry_on == (ConnectionError,)
    assert dict(opts.ray_resources) == {"num_cpus": 1, "resources": {"disk": 2}}
    assert RemoteOptions().ray_resources == {}
    assert remote()(jobs.square.func).opts is DEFAULT_OPTIONS  # the call path's fast case


def test_process_executor_needs_an_importable_function() -> None:
    with pytest.raises(ValueError, match="needs a function a worker process can import"):

        @remote(executor="process")
        def local_job() -> None:
            pass


# -- the process executor (local backend) --------------------------------------------


async def test_process_executor_runs_in_other_processes(framex_container: Container) -> None:
    value, pid = await jobs.in_process.remote(2)
    assert value == 6 and pid != os.getpid()
    avalue, apid = await jobs.ain_process.remote(2)
    assert avalue == 8 and apid != os.getpid()
    results = await jobs.in_process.map(range(6))
    assert [v for v, _ in results] == [x * 3 for x in range(6)]


async def test_process_executor_unpicklable_argument(framex_container: Container) -> None:
    with pytest.raises(RemoteError, match=r"`takes_anything` could not be sent to a worker process.*picklable"):
        await jobs.takes_anything.remote(lambda: None)
    assert await jobs.takes_anything.remote(5) == "5"


async def test_process_executor_worker_death(framex_container: Container) -> None:
    with pytest.raises(RemoteError, match=r"`crash` did not finish: the worker process running it died"):
        await jobs.crash.remote()
    value, _ = await jobs.in_process.remote(1)  # a fresh pool serves the next call
    assert value == 3


async def test_default_executor_from_config(tmp_path: Path) -> None:
    from framex.container import close_container, create_container, use_container

    container = create_container(None, local__executor="process", load_plugins=[], load_builtin_plugins=[])
    try:
        with use_container(container):
            assert await jobs.whoami.remote() != os.getpid()  # config default: a worker process
            assert await jobs.whoami.options(executor="thread").remote() == os.getpid()
    finally:
        close_container(container)


# -- cancellation --------------------------------------------------------------------


async def poll(path: Path, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not path.exists():
        assert asyncio.get_running_loop().time() < deadline, f"{path.name} never appeared"
        await asyncio.sleep(0.02)


async def test_cancelling_the_caller(backend: Container, tmp_path: Path) -> None:
    started, cancelled, release = tmp_path / "started", tmp_path / "cancelled", tmp_path / "release"
    task = asyncio.ensure_future(jobs.cancellable.remote(started, cancelled, release))
    await poll(started)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    if is_ray(backend):
        await poll(cancelled)  # Ray interrupted the running task
    else:
        release.write_text("go")  # a thread cannot be interrupted: it runs to its end
    assert await jobs.square.remote(3) == 9  # and the backend keeps serving
