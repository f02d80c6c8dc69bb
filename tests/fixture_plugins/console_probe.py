"""A plugin that describes itself fully and has APIs to watch on the console: one that answers
at once, one that fails, one held until a test opens its gate."""

from __future__ import annotations

import threading

from framex.plugin import PluginMetadata, on_request, remote

__plugin_meta__ = PluginMetadata(
    name="console_probe",
    version="3.1.4",
    description="Shows itself on the console.",
    author="Probe Team",
    url="https://example.invalid/console-probe",
)

gate = threading.Event()
"""Held calls wait on this; tests set it."""


@remote(timeout=30)
def hold(tag: str) -> str:
    if not gate.wait(timeout=30):
        raise TimeoutError("the gate was never opened")
    return tag


@remote(retries=1)
def fail(x: int) -> int:
    raise ValueError(f"cannot take {x}")


class Tools:
    @staticmethod
    @remote()
    def double(x: int) -> int:
        return 2 * x


@on_request("/console_probe/ok")
async def ok(x: int = 1) -> int:
    """Answers at once, through a remote call."""
    return await Tools.double.remote(x)


@on_request("/console_probe/fail")
async def failing() -> int:
    return await fail.remote(1)


@on_request("/console_probe/hold")
async def held(tag: str = "held") -> str:
    """Answers when the test opens the gate."""
    return await hold.remote(tag)
