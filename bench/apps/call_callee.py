"""The plugin ``bench.plugin_call`` calls: no-op handlers, async and sync, with and without arguments."""

import time

from framex.plugin import PluginMetadata, on_request

__plugin_meta__ = PluginMetadata(name="call_callee")


@on_request("/call/noop")
async def noop() -> None:
    """Return at once: what a call adds is all there is to measure."""
    return None


@on_request("/call/args")
async def args(x: int, label: str = "") -> int:
    """Return ``x``: a call with one required and one defaulted argument."""
    return x


@on_request("/call/sync")
def sync_noop(seconds: float = 0) -> None:
    """A sync handler: the runtime runs it on a worker thread (sleeping ``seconds``, when given)."""
    if seconds:
        time.sleep(seconds)
