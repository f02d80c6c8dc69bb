"""FrameX-kit's request-cache examples: `cache={}` and a key builder of the kit's shape."""

from typing import Any

from starlette.requests import Request

from framex.consts import VERSION
from framex.plugin import BasePlugin, PluginMetadata, on_register, on_request

__plugin_meta__ = PluginMetadata(
    name="kit_cached",
    version=VERSION,
    description="Cached routes.",
    author="tests",
    url="https://example.invalid/kit_cached",
)

calls = {"report": 0, "status": 0}


def build_report_key(request: Request, context: Any, request_kwargs: dict[str, Any]) -> str:
    return f"{request.url.path}:{request_kwargs['project_id']}"


@on_register()
class CachedPlugin(BasePlugin):
    @on_request("/kit/report", methods=["POST"], cache={"key_builder": build_report_key})
    async def report(self, project_id: str, note: str = "") -> dict[str, str]:
        calls["report"] += 1
        return {"project_id": project_id}

    @on_request("/kit/status", methods=["GET"], cache={})
    async def status(self) -> dict[str, str]:
        calls["status"] += 1
        return {"status": "ok"}
