"""A plugin that exercises every handler shape the HTTP layer supports."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from fastapi import HTTPException, Request
from pydantic import BaseModel, Field

from framex.plugin import ApiType, BasePlugin, PluginMetadata, call_plugin_api, on_register, on_request, remote

__plugin_meta__ = PluginMetadata(
    name="kitchen",
    version="2.3.4",
    required_remote_apis=["/api/v1/echo", "echo.EchoPlugin.confess"],
)

SECRET = "s3cr3t-token-value"
gate = threading.Event()
"""Blocking jobs wait on this; tests set it."""


class Order(BaseModel):
    item: str = Field(min_length=1)
    quantity: int = Field(1, ge=1)


def where() -> dict[str, int]:
    """This process and thread, to tell the loop's thread from a worker thread."""
    return {"pid": os.getpid(), "thread": threading.get_ident()}


@remote()
def wait_for_gate(tag: str) -> str:
    if not gate.wait(timeout=30):
        raise TimeoutError("gate was never opened")
    return tag


@on_register()
class KitchenPlugin(BasePlugin):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.started = False
        self.stopped = False

    async def on_start(self) -> None:
        self.started = True

    async def on_stop(self) -> None:
        self.stopped = True
        marker = os.environ.get("KITCHEN_STOP_MARKER")
        if marker:  # lets a test see on_stop run in another process (a Ray Serve replica)
            Path(marker).write_text("stopped")

    @on_request("/kitchen/defaults")
    async def defaults(self, name: str = "chef", count: int = 3, hot: bool = True) -> dict[str, object]:
        return {"name": name, "count": count, "hot": hot}

    @on_request("/kitchen/sync")
    def sync_handler(self, x: int) -> dict[str, object]:
        return {"x": x, **where()}

    @on_request("/kitchen/loop_thread")
    async def loop_thread(self) -> dict[str, int]:
        """Where the event loop serving requests runs: async handlers run on it."""
        return where()

    @on_request("/kitchen/order", methods=["POST"])
    async def order(self, order: Order, note: str = "") -> Order:
        return Order(item=order.item + note, quantity=order.quantity * 2)

    @on_request("/kitchen/boom")
    async def boom(self) -> None:
        raise RuntimeError(f"database password is {SECRET}")

    @on_request("/kitchen/teapot")
    async def teapot(self) -> None:
        raise HTTPException(status_code=418, detail="I'm a teapot")

    @on_request("/kitchen/raw", raw_response=True)
    async def raw(self, value: int = 1) -> dict[str, int]:
        return {"value": value}

    @on_request("/kitchen/stream", stream=True)
    async def stream(self, n: int = 3) -> AsyncIterator[dict[str, int]]:
        for i in range(n):
            yield {"i": i}

    @on_request("/kitchen/sync_stream", stream=True)
    def sync_stream(self, n: int = 2) -> Iterator[str]:
        for i in range(n):
            yield f"event: tick\ndata: {i}\n\n"

    @on_request("/kitchen/broken_stream", stream=True)
    async def broken_stream(self) -> AsyncIterator[int]:
        yield 1
        raise RuntimeError(SECRET)

    @on_request("/kitchen/blocking")
    async def blocking(self, tag: str) -> str:
        return await wait_for_gate.remote(tag)

    @on_request("/kitchen/echo_via_call")
    async def echo_via_call(self, message: str) -> object:
        return await call_plugin_api("/api/v1/echo", message=message)

    @on_request("/kitchen/undeclared")
    async def undeclared(self) -> object:
        return await call_plugin_api("/api/v1/demo/run", x=1)

    @on_request(call_type=ApiType.FUNC)
    async def add(self, a: int, b: int = 10) -> int:
        return a + b

    @on_request("/kitchen/both", call_type=ApiType.ALL)
    async def both(self, order: Order) -> str:
        return f"{order.quantity}x{order.item}"

    @on_request("/kitchen/state")
    async def state(self) -> dict[str, bool]:
        return {"started": self.started, "stopped": self.stopped}


@on_request("/kitchen/module_level", methods=["GET", "POST"])
def module_level(word: str = "hi") -> str:
    return word * 2


@on_request("/kitchen/created", methods=["POST"], status_code=201, summary="Create a thing")
async def created(name: str) -> dict[str, str]:
    return {"name": name}


@on_request("/kitchen/whoami")
async def whoami(request: Request, shout: bool = False) -> str:
    agent = request.headers.get("user-agent", "")
    return agent.upper() if shout else agent
