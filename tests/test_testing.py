"""The pytest plugin's `RecordingAdapter`: the whole adapter contract, recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from framex.adapters.base import Adapter
from framex.adapters.local import LocalAdapter
from framex.testing import RecordingAdapter
from tests.remote_jobs import acount_up, count_up, endless, fails_midway, square


def test_every_adapter_has_the_whole_contract() -> None:
    for adapter in (RecordingAdapter(), LocalAdapter()):
        assert isinstance(adapter, Adapter)
        assert adapter.retries_tasks is False


async def test_generator_calls_are_recorded_and_yield_their_items(framex_adapter: RecordingAdapter) -> None:
    assert [i async for i in count_up.remote(3)] == [0, 1, 2]
    assert [i async for i in acount_up.remote(2)] == [0, 1]
    assert framex_adapter.names == ["count_up", "acount_up"]
    assert framex_adapter.calls[0].args == (3,)


async def test_a_stream_closed_early_closes_the_generator(framex_adapter: RecordingAdapter, tmp_path: Path) -> None:
    marker = tmp_path / "closed"
    stream = endless.remote(marker)
    assert await anext(stream) == 0
    assert not marker.exists()
    await stream.aclose()
    assert marker.exists()  # the generator's `finally` ran
    assert framex_adapter.names == ["endless"]


async def test_a_failing_generator_raises_at_the_consumer(framex_adapter: RecordingAdapter) -> None:
    seen: list[int] = []
    with pytest.raises(ValueError, match="broke after one item"):
        async for item in fails_midway.remote():
            seen.append(item)
    assert seen == [1] and framex_adapter.names == ["fails_midway"]


async def test_map_records_every_item(framex_adapter: RecordingAdapter) -> None:
    assert await square.map([1, 2, 3]) == [1, 4, 9]
    assert framex_adapter.names == ["square"] * 3
    assert [c.args for c in framex_adapter.calls] == [(1,), (2,), (3,)]
