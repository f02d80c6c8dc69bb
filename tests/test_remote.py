from __future__ import annotations

import asyncio
import contextvars
import threading
import traceback

import pytest

from framex.container import Container, create_container, use_container
from framex.plugin import remote
from framex.remote import RemoteFunction
from framex.testing import RecordingAdapter


class JobError(ValueError):
    pass


@remote()
def double(x: int) -> int:
    return x * 2


@remote()
async def adouble(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


@remote
def bare(x: int) -> int:
    return x + 1


@remote()
def fails(message: str) -> None:
    raise JobError(message)


@remote()
async def afails(message: str) -> None:
    raise JobError(message)


class Worker:
    factor = 10

    def __init__(self, base: int = 0) -> None:
        self.base = base

    @remote()
    def total(self, values: list[int]) -> int:
        return self.base + sum(values)

    @remote()
    async def atotal(self, values: list[int]) -> int:
        return self.base + sum(values)

    @classmethod
    @remote()
    def scale_above(cls, x: int) -> int:
        return x * cls.factor

    @remote()
    @classmethod
    def scale_below(cls, x: int) -> int:
        return x * cls.factor

    @remote()
    @classmethod
    async def ascale(cls, x: int) -> int:
        return x * cls.factor

    @staticmethod
    @remote()
    def static_above(x: int) -> int:
        return x - 1

    @remote()
    @staticmethod
    def static_below(x: int) -> int:
        return x - 2


class SubWorker(Worker):
    factor = 100


async def test_every_shape_remote_and_direct(framex_container: Container) -> None:
    w = Worker(base=5)
    assert await double.remote(21) == 42 and double(21) == 42
    assert await adouble.remote(21) == 42 and await adouble(21) == 42
    assert await bare.remote(1) == 2 and bare(1) == 2
    assert await w.total.remote([1, 2, 3]) == 11 and w.total([1, 2, 3]) == 11
    assert await w.atotal.remote([1]) == 6 and await w.atotal([1]) == 6
    assert await Worker.scale_above.remote(2) == 20 and Worker.scale_above(2) == 20
    assert await Worker.scale_below.remote(2) == 20 and Worker.scale_below(2) == 20
    assert await Worker.ascale.remote(3) == 30
    assert await w.scale_below.remote(2) == 20  # through an instance, cls is still the class
    assert await SubWorker.scale_above.remote(2) == 200 and await SubWorker.scale_below.remote(2) == 200
    assert await Worker.static_above.remote(5) == 4 and w.static_above(5) == 4
    assert await Worker.static_below.remote(5) == 3 and w.static_below(5) == 3
    assert await Worker.total.remote(w, [1]) == 6  # unbound: pass self explicitly


def test_decoration_keeps_identity_and_does_not_mutate() -> None:
    def plain(x: int) -> int:
        """Doc."""
        return x

    before = dict(plain.__dict__)
    wrapped = remote()(plain)
    assert isinstance(wrapped, RemoteFunction)
    assert wrapped.__name__ == "plain" and wrapped.__doc__ == "Doc." and wrapped.__wrapped__ is plain
    assert plain.__dict__ == before
    assert remote()(wrapped) is wrapped
    with pytest.raises(TypeError, match="decorates a function or method, not int"):
        remote()(3)  # type: ignore[call-overload]


async def test_original_exception_type_message_and_traceback(framex_container: Container) -> None:
    with pytest.raises(JobError, match="bad input 7") as info:
        await fails.remote("bad input 7")
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "fails" in frames  # the job's own frame is in the traceback
    with pytest.raises(JobError, match="async bad"):
        await afails.remote("async bad")


async def test_sync_jobs_run_in_parallel_on_the_pool(framex_container: Container) -> None:
    # Eight jobs can only pass an eight-party barrier if they run at the same time.
    barrier = threading.Barrier(8, timeout=10)

    @remote()
    def meet(i: int) -> str:
        barrier.wait()
        return threading.current_thread().name

    names = await asyncio.gather(*(meet.remote(i) for i in range(8)))
    assert len(set(names)) == 8
    assert all(n.startswith("framex-remote") for n in names)


async def test_pool_is_bounded_by_max_workers() -> None:
    container = create_container(None, local__max_workers=2)
    loop = asyncio.get_running_loop()
    pool_full = asyncio.Event()
    running = 0
    peak = 0
    lock = threading.Lock()
    release = threading.Event()

    @remote()
    def job() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            if running == 2:
                loop.call_soon_threadsafe(pool_full.set)
        release.wait(10)
        with lock:
            running -= 1

    with use_container(container):
        tasks = [asyncio.ensure_future(job.remote()) for _ in range(5)]
        await asyncio.wait_for(pool_full.wait(), 10)
        release.set()
        await asyncio.gather(*tasks)
    assert peak == 2
    container.adapter().close()


request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="unset")


@remote()
def read_var() -> str:
    return request_var.get()


async def test_contextvars_reach_sync_jobs(framex_container: Container) -> None:
    request_var.set("req-42")
    assert await read_var.remote() == "req-42"


async def test_event_loop_stays_free_while_jobs_block(framex_container: Container) -> None:
    loop = asyncio.get_running_loop()
    blocking = asyncio.Event()
    ticked = threading.Event()
    ticks = 0

    @remote()
    def block() -> int:
        loop.call_soon_threadsafe(blocking.set)
        # This thread holds the job until the loop has ticked meanwhile: a loop that the
        # job blocked could never tick, and the job would fail here.
        if not ticked.wait(10):
            raise TimeoutError("the event loop did not run while the job blocked")
        return ticks

    async def ticker() -> None:
        nonlocal ticks
        await blocking.wait()
        for _ in range(5):
            await asyncio.sleep(0)  # one turn of the loop each
            ticks += 1
        ticked.set()

    job = asyncio.ensure_future(block.remote())
    await asyncio.wait_for(ticker(), 10)
    assert await job == 5  # the job saw all five ticks happen while it blocked


async def test_adapter_resolved_at_call_time(framex_container: Container) -> None:
    assert await double.remote(2) == 4  # real backend first
    fake = RecordingAdapter()
    with framex_container.adapter.override(fake):
        assert await double.remote(3) == 6
        assert await Worker(1).total.remote([2]) == 3
        assert await Worker.scale_above.remote(1) == 10
    assert fake.names == ["double", "Worker.total", "Worker.scale_above"]
    assert fake.calls[0].args == (3,)
    await double.remote(4)
    assert len(fake.calls) == 3  # override gone: back to the thread pool


async def test_framex_adapter_fixture_records(framex_adapter: RecordingAdapter) -> None:
    assert await adouble.remote(5) == 10
    assert framex_adapter.names == ["adouble"]


async def test_each_container_uses_its_own_adapter() -> None:
    first, second = create_container(None), create_container(None)
    first_fake, second_fake = RecordingAdapter(), RecordingAdapter()
    first.adapter.override(first_fake)
    second.adapter.override(second_fake)
    with use_container(first):
        await double.remote(1)
        with use_container(second):
            await double.remote(2)
        await double.remote(3)
    assert [c.args for c in first_fake.calls] == [(1,), (3,)]
    assert [c.args for c in second_fake.calls] == [(2,)]


def test_python_313_classmethod_order_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    # `framex.remote` is the decorator; the module is reached through sys.modules.
    monkeypatch.setattr(sys.modules["framex.remote"], "_CLASSMETHOD_CHAINS", False)

    def scale(cls: type, x: int) -> int:
        return x

    with pytest.warns(UserWarning, match=r"put `@remote\(\)` above `@classmethod`"):
        remote()(scale)
