"""The active container: `use_container` as a plain call and as a block, in tasks and threads."""

from __future__ import annotations

import asyncio
import threading

import pytest

from framex import create_container, get_container, use_container
from framex.container import Container

pytestmark = pytest.mark.usefixtures("isolated_default")


def containers(n: int) -> list[Container]:
    return [create_container(None, load_builtin_plugins=[], load_plugins=[]) for _ in range(n)]


def test_a_plain_call_sets_the_default_and_a_block_leaves_it() -> None:
    default, other = containers(2)
    use_container(default)
    assert get_container() is default
    with use_container(other) as active:
        assert active is other and get_container() is other
    assert get_container() is default


def test_a_block_never_sets_the_default_seen_by_other_threads() -> None:
    default, other = containers(2)
    use_container(default)
    seen: list[Container] = []
    inside, looked = threading.Event(), threading.Event()

    def look() -> None:
        assert inside.wait(10)
        seen.append(get_container())
        looked.set()

    thread = threading.Thread(target=look)
    thread.start()
    with use_container(other):
        inside.set()
        assert looked.wait(10)
        assert get_container() is other
    thread.join(10)
    assert seen == [default]


async def test_overlapping_blocks_in_two_tasks_leave_the_default_as_it_was() -> None:
    default, a, b = containers(3)
    use_container(default)
    a_in, b_in, a_may_leave = asyncio.Event(), asyncio.Event(), asyncio.Event()
    seen: dict[str, Container] = {}

    async def first() -> None:
        with use_container(a):
            a_in.set()
            await a_may_leave.wait()  # b enters while a is inside, and leaves after a
            seen["a"] = get_container()

    async def second() -> None:
        await a_in.wait()
        with use_container(b):
            b_in.set()
            await asyncio.sleep(0)
            a_may_leave.set()
            await asyncio.sleep(0)
            seen["b"] = get_container()

    await asyncio.gather(first(), second())
    assert seen == {"a": a, "b": b}
    assert get_container() is default


def test_overlapping_blocks_in_two_threads_leave_the_default_as_it_was() -> None:
    default, a, b = containers(3)
    use_container(default)
    made = threading.Barrier(2)
    # Both objects exist before either block starts: the order that used to lose the default.
    errors: list[BaseException] = []

    def run(container: Container) -> None:
        try:
            manager = use_container(container)
            made.wait(10)
            with manager:
                assert get_container() is container
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert get_container() is default


def test_the_default_is_built_once_when_first_asked() -> None:
    first = get_container()
    assert get_container() is first
