"""What only the Ray backend does: task wrappers, error unwrapping, dead workers, start-up."""

from __future__ import annotations

import os

import pytest

from framex.adapters.ray import RayAdapter
from framex.container import Container
from framex.errors import RemoteError
from framex.plugin import remote

pytestmark = pytest.mark.ray


@remote()
def square(x: int) -> int:
    return x * x


class Holder:
    @remote()
    def get(self, x: int) -> int:
        return x


@remote()
def die() -> None:
    os._exit(1)


async def test_task_wrapper_built_once_per_function_and_object_untouched(ray_container: Container) -> None:
    adapter = ray_container.adapter()
    assert isinstance(adapter, RayAdapter)
    before = dict(vars(square))
    assert await square.remote(3) == 9
    wrapper = adapter._tasks[square]
    assert await square.remote(4) == 16
    h = Holder()
    assert await h.get.remote(1) == 1
    assert await h.get.remote(2) == 2  # a new bound object per access, one wrapper
    assert await Holder().get.remote(3) == 3
    assert adapter._tasks[square] is wrapper
    assert len(adapter._tasks) == 2
    assert vars(square) == before
    assert square(5) == 25


async def test_dead_worker_gives_a_clear_error(ray_container: Container) -> None:
    with pytest.raises(RemoteError, match=r"`die` did not finish: the Ray worker running it died"):
        await die.remote()
    assert await square.remote(2) == 4  # the next call is fine
