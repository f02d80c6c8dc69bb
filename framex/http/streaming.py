"""Server-Sent Events for ``stream=True`` APIs."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from pydantic_core import to_json
from starlette.concurrency import iterate_in_threadpool
from starlette.exceptions import HTTPException

from framex.context import activate

if TYPE_CHECKING:
    from framex.container import Container
    from framex.http.marks import RouteMarks

logger = logging.getLogger("framex.http")

SSE_MEDIA_TYPE = "text/event-stream"


def sse_event(data: Any, event: str | None = None) -> str:
    """Encode one event: ``data`` as JSON, with an optional event type.

    A handler may also yield ready-made event text (anything ending in a blank line),
    which is sent as it is.
    """
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {to_json(data).decode()}\n\n"


def _encode(item: Any) -> str:
    if isinstance(item, bytes):
        item = item.decode()
    if isinstance(item, str) and item.endswith("\n\n"):
        return item
    return sse_event(item)


def _http_error(exc: HTTPException, request_id: str) -> dict[str, Any]:
    detail = exc.detail
    if isinstance(detail, str):
        return {"status": exc.status_code, "message": detail, "request_id": request_id}
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "Error"
    return {"status": exc.status_code, "message": phrase, "data": detail, "request_id": request_id}


async def sse_stream(
    items: Any, label: str, request_id: str, container: Container, marks: RouteMarks | None = None
) -> AsyncIterator[str]:
    """Encode what a streaming handler produced; an error ends the stream with an error event.

    ``marks`` (the loop watchdog's) name the stream while it is sent.
    """
    # The body may be sent from a task of its own: plugin code running in it sees the
    # app's container as the active one.
    activate(container)
    marked = marks.mark(f"{label} (streaming its response)") if marks is not None else None
    events = _events(items, label, request_id)
    try:
        async for event in events:
            yield event
    finally:
        try:
            await events.aclose()
        finally:
            if marks is not None and marked is not None:
                marks.unmark(marked)


async def _events(items: Any, label: str, request_id: str) -> AsyncGenerator[str, None]:
    source: AsyncIterator[Any]
    if hasattr(items, "__aiter__"):
        source = items
    elif isinstance(items, Iterator) or (hasattr(items, "__iter__") and not isinstance(items, (str, bytes, dict))):
        source = iterate_in_threadpool(iter(items))
    else:
        yield _encode(items)
        return
    try:
        async for item in source:
            yield _encode(item)
    except HTTPException as exc:
        # Raised on purpose: the client gets its status in an error event, as from FrameX-kit.
        logger.info("stream of %s ended with HTTP %s (request id %s)", label, exc.status_code, request_id)
        yield sse_event(_http_error(exc, request_id), event="error")
    except Exception:
        logger.exception("stream of %s failed (request id %s)", label, request_id)
        yield sse_event({"status": 500, "message": "Internal server error", "request_id": request_id}, event="error")
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
