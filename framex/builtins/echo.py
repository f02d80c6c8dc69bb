"""``echo``: a small plugin that answers with what it is given; handy for checks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel

from framex.consts import VERSION
from framex.plugin import ApiType, BasePlugin, PluginMetadata, on_register, on_request
from framex.utils import StreamEnventType, make_stream_event

STREAM_PREFIX = "This message is being streamed., "

__plugin_meta__ = PluginMetadata(
    name="echo",
    version=VERSION,
    description="Answers with what it is given.",
    author="FrameX",
    url="https://pypi.org/project/framex/",
)


class EchoModel(BaseModel):
    id: int
    name: str = "echo"


@on_register()
class EchoPlugin(BasePlugin):
    @on_request("/echo", methods=["GET"])
    async def echo(self, message: str) -> str:
        """Return `message` unchanged."""
        return message

    @on_request("/echo_model", methods=["POST"])
    async def echo_model(self, message: str, model: EchoModel) -> str:
        """Return `message` and the body model."""
        return f"{message},{model.model_dump()}"

    @on_request("/echo_stream", methods=["GET"], stream=True)
    async def echo_stream(self, message: str, delay: Annotated[float, Query(ge=0, le=10)] = 0.0) -> AsyncIterator[str]:
        """Stream `This message is being streamed., <message>` one character per
        `message_chunk` event, `delay` seconds apart (at most 10), then a `finish` event.

        The same events as FrameX-kit's echo, so clients of a kit service keep working.
        """
        for char in f"{STREAM_PREFIX}{message}":
            yield make_stream_event(StreamEnventType.MESSAGE_CHUNK, char)
            if delay:
                await asyncio.sleep(delay)
        yield make_stream_event(StreamEnventType.FINISH)

    @on_request(call_type=ApiType.FUNC)
    async def confess(self, message: str, call_back: Callable[[str], Any]) -> str:
        """A function API: call `call_back` with `message` and report both."""
        return f"I am calling with message={message},call_back_result={call_back(message)}"
