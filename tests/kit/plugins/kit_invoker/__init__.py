"""A FrameX-kit-shaped caller: static `@remote` methods and `_call_remote_api` on every kind of API."""

import time
from typing import Any

from framex.consts import VERSION
from framex.plugin import BasePlugin, PluginMetadata, on_register, on_request, remote

__plugin_meta__ = PluginMetadata(
    name="kit_invoker",
    version=VERSION,
    description="Calls the echo plugin and kit_alias the way FrameX-kit plugins do.",
    author="tests",
    url="https://example.invalid/kit_invoker",
    required_remote_apis=[
        "/api/v1/echo",
        "echo.EchoPlugin.confess",
        "/api/v1/echo_stream",
        "/api/v1/echo_model",
        "/api/v1/kit/account",
        "kit_alias.AccountPlugin.get_account",
    ],
)


@on_register()
class InvokerPlugin(BasePlugin):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    @staticmethod
    @remote()
    def blocking_part() -> str:
        time.sleep(0.01)
        return "sync;"

    @staticmethod
    @remote()
    def with_argument(a: str) -> str:
        return f"sync({a});"

    @staticmethod
    @remote()
    async def async_part() -> str:
        return "async;"

    @staticmethod
    @remote()
    async def async_with_arguments(a: int, b: str) -> str:
        return f"async({a},{b})"

    @on_request("/kit/invoke", methods=["GET"])
    async def invoke(self, message: str) -> list[Any]:
        def content_of(chunk: str) -> str:
            return chunk.split('"content": "')[-1].split('"')[0]

        remote_part = (
            await self.blocking_part.remote()
            + await self.with_argument.remote("x")
            + await self.async_part.remote()
            + await self.async_with_arguments.remote(1, "y")
        )
        echo = await self._call_remote_api("/api/v1/echo", message=message)
        stream = await self._call_remote_api("/api/v1/echo_stream", message=message)
        stream_text = "".join([content_of(c) for c in stream if "message_chunk" in c])
        confess = await self._call_remote_api(
            "echo.EchoPlugin.confess", message=message, call_back=lambda text: "cb:" + text
        )
        echo_model = await self._call_remote_api("/api/v1/echo_model", message=message, model={"id": 2, "name": "m"})
        account_http = await self._call_remote_api("/api/v1/kit/account")
        account_func = await self._call_remote_api("kit_alias.AccountPlugin.get_account")
        return [echo, stream_text, confess, echo_model, remote_part, account_http, account_func]

    @on_request("/kit/stream_type", methods=["GET"])
    async def stream_type(self) -> str:
        stream = await self._call_remote_api("/api/v1/echo_stream", message="t")
        return type(stream).__name__

    @on_request("/kit/undeclared", methods=["GET"])
    async def undeclared(self) -> str:
        try:
            await self._call_remote_api("/api/v1/kit/hooked")
        except RuntimeError as exc:
            return f"RuntimeError: {type(exc).__name__}"
        return "no error"

    @on_request("/kit/missing", methods=["GET"])
    async def missing(self) -> str:
        try:
            await self._call_remote_api("/api/v1/nowhere")
        except RuntimeError as exc:
            return f"RuntimeError: {type(exc).__name__}"
        return "no error"
