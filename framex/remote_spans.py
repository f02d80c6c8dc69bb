"""The spans of ``.remote()`` calls: their names and attributes, and streams' spans."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from framex.tracing import stream_in_span

if TYPE_CHECKING:
    from framex.adapters.base import Adapter
    from framex.remote import RemoteFunction
    from framex.tracing import Tracing


def remote_span(fn: RemoteFunction[..., Any], adapter: Adapter, **extra: Any) -> tuple[str, dict[str, Any]]:
    """The name and attributes of the span of a ``.remote()`` call of ``fn`` on ``adapter``."""
    label = fn.func.__qualname__
    executor: str
    if adapter.name == "ray":
        executor = "ray"
    else:
        executor = fn.opts.executor or ("loop" if fn.is_async else str(getattr(adapter, "executor", "thread")))
    attributes: dict[str, Any] = {
        "framex.function": label,
        "framex.backend": adapter.name,
        "framex.executor": executor,
        **extra,
    }
    if fn.opts.batch_size is not None:
        attributes["framex.batch_size"] = fn.opts.batch_size
    return f"remote {label}", attributes


def traced_items(
    tracing: Tracing, fn: RemoteFunction[..., Any], adapter: Adapter, items: AsyncIterator[Any]
) -> AsyncIterator[Any]:
    """``items`` of a ``.remote()`` stream, inside its span, which ends when the stream does."""
    return stream_in_span(tracing, tracing.start(*remote_span(fn, adapter)), items)
