"""FrameX-kit's ``framex.utils`` stream event helpers.

A streaming handler may yield what :func:`make_stream_event` returns: FrameX sends
ready-made event text as it is.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class StreamEnventType(StrEnum):
    """The event types of FrameX-kit streams (the kit's spelling of the name is kept)."""

    MESSAGE_CHUNK = "message_chunk"
    FINISH = "finish"
    ERROR = "error"
    DEBUG = "debug"


StreamEventType = StreamEnventType
"""The same enum, spelled correctly."""


def make_stream_event(event_type: StreamEnventType | str, data: str | dict[str, Any] | BaseModel | None = None) -> str:
    """One Server-Sent Event: ``event: <type>`` and ``data:`` as JSON.

    A string becomes ``{"content": <string>}``, a model its dict, nothing (or an empty
    value) ``{}``; non-ASCII text is kept as it is.
    """
    payload: Any
    if not data:
        payload = {}
    elif isinstance(data, BaseModel):
        payload = data.model_dump(mode="json")
    elif isinstance(data, str):
        payload = {"content": data}
    else:
        payload = data
    return f"event: {event_type}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n"


__all__ = ["StreamEnventType", "StreamEventType", "make_stream_event"]
