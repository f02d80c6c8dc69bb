"""A FrameX-kit-shaped plugin: kit stream events, a slashless path, the kit's logger and
settings, a post-call hook and `check_health`."""

from collections.abc import AsyncGenerator
from typing import Any

from fastapi import HTTPException

from framex import logger
from framex.config import settings
from framex.consts import VERSION
from framex.log import logger as log_logger
from framex.plugin import BasePlugin, PluginMetadata, on_register, on_request
from framex.utils import StreamEnventType, make_stream_event

__plugin_meta__ = PluginMetadata(
    name="kit_stream",
    version=VERSION,
    description="Streams kit events.",
    author="tests",
    url="https://example.invalid/kit_stream",
    required_remote_apis=["/api/v1/echo"],
)


@on_register()
class StreamPlugin(BasePlugin):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        logger.info("kit_stream created")

    async def on_start(self) -> None:
        log_logger.opt(colors=True).success("<g>kit_stream started</g>")

    def _post_call_remote_api_hook(self, data: Any) -> Any:
        return {"hooked": data}

    @on_request("kit/words", methods=["GET"], stream=True)
    async def words(self, text: str) -> AsyncGenerator[str, None]:
        for word in text.split():
            yield make_stream_event(StreamEnventType.MESSAGE_CHUNK, word)
        yield make_stream_event(StreamEnventType.FINISH)

    @on_request("/kit/refused_stream", methods=["GET"], stream=True)
    async def refused_stream(self) -> AsyncGenerator[str, None]:
        yield make_stream_event(StreamEnventType.MESSAGE_CHUNK, "first")
        raise HTTPException(status_code=403, detail="not for you")

    @on_request("/kit/hooked", methods=["GET"])
    async def hooked(self, message: str) -> Any:
        return await self._call_remote_api("/api/v1/echo", message=message)

    @on_request("/kit/settings", methods=["GET"])
    async def read_settings(self) -> dict[str, Any]:
        return {
            "port": settings.server.port,
            "use_ray": settings.server.use_ray,
            "plugins": sorted(settings.plugins),
            "recording": settings.test.disable_record_request,
        }
