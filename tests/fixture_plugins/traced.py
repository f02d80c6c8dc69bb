"""A plugin for the tracing tests: routes that send work to a thread, a worker process,
the event loop and a batch, read a ``.remote()`` stream, call another plugin API, fail,
stream, and relay a stream read through ``call_plugin_api``.

Each job returns the trace id and request id it sees where it runs, so a test can tell
that the caller's context reached it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from framex.logs import current_request_id
from framex.plugin import ApiType, PluginMetadata, call_plugin_api, on_request, remote

__plugin_meta__ = PluginMetadata(name="traced")

logger = logging.getLogger("tests.traced")


def seen() -> dict[str, Any]:
    """The trace id (hex, or None) and request id of the code running here."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    trace_id = format(context.trace_id, "032x") if context.is_valid else None
    logger.info("working")
    return {"trace_id": trace_id, "request_id": current_request_id()}


@remote()
def in_thread() -> dict[str, Any]:
    return seen()


@remote(executor="process")
def in_process() -> dict[str, Any]:
    return seen()


@remote()
async def on_loop() -> dict[str, Any]:
    return seen()


@remote(batch_size=4)
def batched(items: list[int]) -> list[int]:
    return [i * 2 for i in items]


@remote()
async def counted(n: int) -> AsyncIterator[dict[str, Any]]:
    from opentelemetry import trace

    for i in range(n):
        current = trace.get_current_span().get_span_context()
        yield {"i": i, "span_id": format(current.span_id, "016x"), **seen()}


@remote()
def broken() -> None:
    raise ValueError("secret detail of a failure")


@on_request("/traced/work/{kind}")
async def work(kind: str) -> dict[str, Any]:
    jobs = {"thread": in_thread, "process": in_process, "loop": on_loop}
    return await jobs[kind].remote()


@on_request("/traced/batch")
async def batch() -> int:
    return await batched.remote(21)


@on_request("/traced/broken")
async def call_broken() -> None:
    await broken.remote()


@on_request("/traced/helper", call_type=ApiType.FUNC)
async def helper(x: int) -> int:
    return x + 1


@on_request("/traced/calls")
async def calls() -> int:
    return await call_plugin_api("traced.helper", x=1)


@on_request("/traced/stream", stream=True)
async def stream() -> AsyncIterator[dict[str, Any]]:
    yield {"step": 1}
    yield await in_thread.remote()  # after the first event is sent: the span still lasts


@on_request("/traced/relay")
async def relay() -> list[Any]:
    return [item async for item in await call_plugin_api("traced.stream")]


@on_request("/traced/counted")
async def read_counted(n: int = 2) -> list[Any]:
    return [item async for item in counted.remote(n)]
