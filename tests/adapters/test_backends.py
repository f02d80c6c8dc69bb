"""`@remote` behaves the same on every backend: one module, run against local and Ray."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import pytest

from framex.container import Container
from framex.plugin import remote


class JobError(ValueError):
    pass


def where() -> dict[str, object]:
    """Which process ran the job, and its Ray task id when in a Ray worker."""
    task_id = None
    # Only a Ray that is already imported: importing it here, before FrameX configures it,
    # would make the session's Ray listen on the machine's address instead of 127.0.0.1.
    ray: Any = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        task_id = ray.get_runtime_context().get_task_id()
    return {"pid": os.getpid(), "task_id": task_id}


@remote()
def plain(x: int) -> tuple[int, dict[str, object]]:
    return x * 2, where()


@remote()
async def aplain(x: int) -> tuple[int, dict[str, object]]:
    await asyncio.sleep(0)
    return x * 2, where()


@remote()
def fails(message: str) -> None:
    raise JobError(message)


@remote()
async def afails(message: str) -> None:
    raise JobError(message)


@remote()
async def outer(x: int) -> tuple[int, dict[str, object], dict[str, object]]:
    inner_value, inner_where = await plain.remote(x)
    return inner_value + 1, inner_where, where()


class Worker:
    def __init__(self, base: int) -> None:
        self.base = base

    @remote()
    def total(self, values: list[int]) -> tuple[int, dict[str, object]]:
        return self.base + sum(values), where()

    @remote()
    async def atotal(self, values: list[int]) -> tuple[int, dict[str, object]]:
        return self.base + sum(values), where()

    @classmethod
    @remote()
    def scale_above(cls, x: int) -> tuple[int, dict[str, object]]:
        return x * 10, where()

    @remote()
    @classmethod
    async def scale_below(cls, x: int) -> tuple[int, dict[str, object]]:
        return x * 10, where()

    @staticmethod
    @remote()
    def static(x: int) -> tuple[int, dict[str, object]]:
        return x - 1, where()

    def bump(self) -> None:
        self.base += 1


def calls() -> list[tuple[str, object]]:
    w = Worker(5)
    return [
        ("plain", plain.remote(21)),
        ("aplain", aplain.remote(21)),
        ("total", w.total.remote([1, 2])),
        ("atotal", w.atotal.remote([1, 2])),
        ("scale_above", Worker.scale_above.remote(2)),
        ("scale_below", Worker.scale_below.remote(2)),
        ("static", Worker.static.remote(2)),
    ]


async def test_every_shape_gives_the_same_results(backend: Container) -> None:
    names, coros = zip(*calls(), strict=True)
    results = dict(zip(names, [value for value, _ in await asyncio.gather(*coros)], strict=True))  # type: ignore[misc]
    assert results == {
        "plain": 42,
        "aplain": 42,
        "total": 8,
        "atotal": 8,
        "scale_above": 20,
        "scale_below": 20,
        "static": 1,
    }


async def test_where_the_work_runs(backend: Container) -> None:
    for name, coro in calls():
        _, ran = await coro  # type: ignore[misc]
        if backend.settings().adapter == "ray":
            assert ran["pid"] != os.getpid(), name
            assert ran["task_id"], name
        else:
            assert ran["pid"] == os.getpid(), name


async def test_direct_calls_stay_direct(backend: Container) -> None:
    assert plain(1) == (2, where())
    assert Worker(1).total([1])[0] == 2
    assert Worker.scale_above(1)[0] == 10


async def test_original_exception_type_and_message(backend: Container) -> None:
    with pytest.raises(JobError) as info:
        await fails.remote("bad input")
    assert type(info.value) is JobError and str(info.value) == "bad input"
    with pytest.raises(JobError) as ainfo:
        await afails.remote("async bad")
    assert type(ainfo.value) is JobError and str(ainfo.value) == "async bad"


async def test_remote_inside_remote(backend: Container) -> None:
    value, inner, outer_ran = await outer.remote(3)
    assert value == 7
    if backend.settings().adapter == "ray":
        assert inner["task_id"] and outer_ran["task_id"]
        assert inner["task_id"] != outer_ran["task_id"]


async def test_instance_is_copied_for_the_call(backend: Container) -> None:
    w = Worker(1)
    assert (await w.total.remote([0]))[0] == 1
    w.bump()  # the next call sees the current state of the instance
    assert (await w.total.remote([0]))[0] == 2
