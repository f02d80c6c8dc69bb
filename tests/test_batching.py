"""`@remote(batch_size=..., batch_wait_ms=...)`: concurrent calls gathered into one execution."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from framex.container import Container, close_container, create_container, use_container
from framex.errors import BatchResultError, RemoteTimeoutError
from framex.plugin import remote
from framex.testing import RecordingAdapter
from tests.server import framex_server

BATCHES: list[list[Any]] = []
"""Every batch the jobs below ran (local backend: they run in this process)."""
GATE = threading.Event()
"""`held` waits for it: a batch that stays running while a test queues more calls."""
RUNNING = threading.Semaphore(0)


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    BATCHES.clear()
    GATE.clear()
    while RUNNING.acquire(blocking=False):
        pass
    yield
    GATE.set()  # never leave a pool thread waiting


@remote(batch_size=4, batch_wait_ms=50)
def double(items: list[int], scale: int = 2) -> list[int]:
    BATCHES.append(list(items))
    return [x * scale for x in items]


@remote(batch_size=8)
def held(items: list[int]) -> list[int]:
    BATCHES.append(list(items))
    RUNNING.release()
    assert GATE.wait(30), "the test never released the batch"
    return [x + 1 for x in items]


@remote(batch_size=8, batch_wait_ms=10)
async def mixed(items: list[int]) -> list[Any]:
    return [ValueError(f"odd {x}") if x % 2 else x for x in items]


@remote(batch_size=8, batch_wait_ms=10)
def short(items: list[int]) -> list[int]:
    return items[:-1]


@remote(batch_size=8, batch_wait_ms=10)
def not_a_list(items: list[int]) -> dict[str, int]:
    return {"n": len(items)}


@remote(batch_size=8, batch_wait_ms=10)
def explodes(items: list[int]) -> list[int]:
    raise RuntimeError(f"batch of {len(items)} failed")


ATTEMPTS: list[int] = []


@remote(batch_size=8, batch_wait_ms=20, retries=1, retry_on=(ConnectionError,))
def flaky(items: list[int]) -> list[int]:
    ATTEMPTS.append(len(items))
    if len(ATTEMPTS) == 1:
        raise ConnectionError("first attempt")
    return items


@remote(batch_size=1, max_concurrency=2)
def overlapping(items: list[int]) -> list[int]:
    RUNNING.release()
    assert GATE.wait(30)
    return items


@remote(batch_size=64, batch_wait_ms=5)
def sized(items: list[int]) -> list[tuple[int, int]]:
    """Each item with the size of the batch it ran in, and the process that ran it."""
    return [(len(items), os.getpid()) for _ in items]


class Scaler:
    def __init__(self, factor: int) -> None:
        self.factor = factor

    @remote(batch_size=16, batch_wait_ms=20)
    def scale(self, items: list[int]) -> list[int]:
        BATCHES.append([self.factor, *items])
        return [x * self.factor for x in items]


async def wait_for(semaphore: threading.Semaphore) -> None:
    """Wait (off the loop) until a batch of `held` / `overlapping` is running."""
    assert await asyncio.to_thread(semaphore.acquire, True, 30), "no batch started"


async def test_concurrent_calls_run_as_one_batch_and_each_gets_its_item(framex_container: Container) -> None:
    results = await asyncio.gather(*(double.remote(i) for i in range(4)))
    assert results == [0, 2, 4, 6]
    assert BATCHES == [[0, 1, 2, 3]]


async def test_batches_hold_at_most_batch_size_items_in_order(framex_container: Container) -> None:
    results = await asyncio.gather(*(double.remote(i) for i in range(10)))
    assert results == [2 * i for i in range(10)]
    assert BATCHES == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


async def test_other_keyword_values_never_share_a_batch(framex_container: Container) -> None:
    results = await asyncio.gather(double.remote(1, scale=2), double.remote(1, scale=3), double.remote(2, scale=2))
    assert results == [2, 3, 4]
    assert sorted(BATCHES) == [[1], [1, 2]]


async def test_a_zero_wait_runs_at_once_and_gathers_while_a_batch_runs(framex_container: Container) -> None:
    first = asyncio.ensure_future(held.remote(0))
    await wait_for(RUNNING)  # the first batch runs alone, at once
    rest = [asyncio.ensure_future(held.remote(i)) for i in range(1, 6)]
    await asyncio.sleep(0)  # they join the next batch, which waits for a free slot
    GATE.set()
    assert await first == 1
    assert await asyncio.gather(*rest) == [2, 3, 4, 5, 6]
    assert BATCHES == [[0], [1, 2, 3, 4, 5]]


async def test_a_caller_cancelled_before_its_batch_starts_is_removed(framex_container: Container) -> None:
    first = asyncio.ensure_future(held.remote(0))
    await wait_for(RUNNING)
    gone = asyncio.ensure_future(held.remote(1))
    kept = asyncio.ensure_future(held.remote(2))
    await asyncio.sleep(0)
    gone.cancel()
    GATE.set()
    assert await first == 1 and await kept == 3
    assert gone.cancelled()
    assert BATCHES == [[0], [2]]


async def test_a_timed_out_caller_gets_its_error_and_the_batch_runs_on(framex_container: Container) -> None:
    first = asyncio.ensure_future(held.remote(0))  # no timeout: waits for the batch
    await wait_for(RUNNING)
    with pytest.raises(RemoteTimeoutError, match=r"held.*within 0\.1 s"):
        await held.options(timeout=0.1).remote(1)  # same batches, a timeout of its own
    GATE.set()
    assert await first == 1
    assert BATCHES == [[0]]  # the timed-out item was withdrawn before its batch started


async def test_an_error_of_the_batch_reaches_every_caller(framex_container: Container) -> None:
    outcomes = await asyncio.gather(*(explodes.remote(i) for i in range(3)), return_exceptions=True)
    assert [str(o) for o in outcomes] == ["batch of 3 failed"] * 3


async def test_an_exception_in_the_results_reaches_its_caller_only(framex_container: Container) -> None:
    outcomes = await asyncio.gather(*(mixed.remote(i) for i in range(4)), return_exceptions=True)
    assert outcomes[0] == 0 and outcomes[2] == 2
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "odd 1"
    assert isinstance(outcomes[3], ValueError) and str(outcomes[3]) == "odd 3"


async def test_results_of_the_wrong_length_or_type_are_a_clear_error(framex_container: Container) -> None:
    outcomes = await asyncio.gather(*(short.remote(i) for i in range(3)), return_exceptions=True)
    for outcome in outcomes:
        assert isinstance(outcome, BatchResultError)
        assert "`short` returned 2 results for a batch of 3 items" in str(outcome)
    with pytest.raises(BatchResultError, match="`not_a_list` is batched and returned dict, not a list"):
        await not_a_list.remote(1)


async def test_retries_run_the_batch_again(framex_container: Container) -> None:
    ATTEMPTS.clear()
    assert await asyncio.gather(*(flaky.remote(i) for i in range(3))) == [0, 1, 2]
    assert ATTEMPTS == [3, 3]


async def test_max_concurrency_bounds_batches_in_flight(framex_container: Container) -> None:
    calls = [asyncio.ensure_future(overlapping.remote(i)) for i in range(3)]
    await wait_for(RUNNING)
    await wait_for(RUNNING)  # two batches run at once...
    assert not RUNNING.acquire(timeout=0.2)  # ...and the third waits for a free slot
    GATE.set()
    assert await asyncio.gather(*calls) == [0, 1, 2]


async def test_map_sends_full_batches_straight_away(framex_container: Container) -> None:
    slow_to_gather = double.options(batch_wait_ms=3_600_000)  # an hour: only full batches may go
    results = await asyncio.wait_for(slow_to_gather.map(range(10)), 30)
    assert results == [2 * i for i in range(10)]
    assert sorted(BATCHES) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


async def test_a_direct_call_is_the_function_as_written(framex_container: Container) -> None:
    assert double([1, 2, 3], scale=10) == [10, 20, 30]
    assert BATCHES == [[1, 2, 3]]


async def test_each_bound_instance_has_batches_of_its_own(framex_container: Container) -> None:
    two, three = Scaler(2), Scaler(3)
    results = await asyncio.gather(two.scale.remote(1), three.scale.remote(1), two.scale.remote(5))
    assert results == [2, 3, 10]
    assert sorted(BATCHES) == [[2, 1, 5], [3, 1]]
    assert len(framex_container.batches()) == 0  # idle batchers are forgotten


async def test_one_batch_is_one_adapter_call(framex_container: Container) -> None:
    recorder = RecordingAdapter()
    with framex_container.adapter.override(recorder):
        assert await asyncio.gather(*(double.remote(i) for i in range(3))) == [0, 2, 4]
    assert recorder.names == ["double"]
    assert recorder.calls[0].args == ([0, 1, 2],) and recorder.calls[0].kwargs == {}


def test_bad_options_and_shapes_fail_at_decoration() -> None:
    def items(values: list[int]) -> list[int]:
        return values

    with pytest.raises(ValueError, match=r"@remote\(batch_size=0\): give a whole number >= 1"):
        remote(batch_size=0)(items)
    with pytest.raises(ValueError, match=r"@remote\(batch_wait_ms=-1\): give a number of milliseconds >= 0"):
        remote(batch_size=2, batch_wait_ms=-1)(items)
    with pytest.raises(ValueError, match=r"batch_wait_ms=5.*needs `batch_size`"):
        remote(batch_wait_ms=5)(items)

    def one(value: int) -> int:
        return value

    with pytest.raises(TypeError, match=r"first parameter `value` is annotated.*int.*cannot hold the list"):
        remote(batch_size=2)(one)

    def stream(values: list[int]) -> Iterator[int]:
        yield from values

    with pytest.raises(ValueError, match="a generator function cannot be batched"):
        remote(batch_size=2)(stream)

    async def ok(values: list[int] | None = None, *, scale: int = 1) -> list[int]:
        return values or []

    assert remote(batch_size=2)(ok).opts.batch_size == 2


async def test_more_than_one_item_per_call_is_refused(framex_container: Container) -> None:
    with pytest.raises(TypeError, match=r"`double` is batched: call `\.remote\(item, \*\*kwargs\)` with one item"):
        await double.remote(1, 2)


async def test_batches_are_measured(framex_config_path: Any) -> None:
    container = create_container(framex_config_path, metrics={"enabled": True})
    try:
        with use_container(container):
            await asyncio.gather(*(double.remote(i) for i in range(4)))
        text = container.metrics().render().decode()
    finally:
        close_container(container)
    name = f"{__name__}.double"
    assert f'framex_remote_batch_size_count{{backend="local",function="{name}"}} 1.0' in text
    assert f'framex_remote_batch_size_sum{{backend="local",function="{name}"}} 4.0' in text
    assert f'framex_remote_batch_wait_seconds_count{{backend="local",function="{name}"}} 1.0' in text


async def test_every_backend_runs_a_batch_as_one_execution(backend: Container) -> None:
    results = await asyncio.gather(*(sized.remote(i) for i in range(20)))
    sizes = {size for size, _ in results}
    assert sizes == {20}  # all twenty arrived within the wait: one execution
    pids = {pid for _, pid in results}
    if backend.settings().adapter == "ray":
        assert pids != {os.getpid()}  # ran in Ray workers
    else:
        assert pids == {os.getpid()}


def test_a_served_route_batches_concurrent_http_requests() -> None:
    with framex_server("--load-plugins", "tests.fixture_plugins.batched") as server:

        async def burst() -> list[dict[str, Any]]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                responses = await asyncio.gather(
                    *(client.get("/api/v1/batched/square", params={"x": i}) for i in range(24))
                )
            return [r.json()["data"] for r in responses]

        answers = asyncio.run(burst())
    assert [a["square"] for a in answers] == [i * i for i in range(24)]
    assert max(a["batch"] for a in answers) > 1
