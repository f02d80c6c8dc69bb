"""Blocking @remote jobs that wait until a test releases them."""

from __future__ import annotations

import threading

from framex.plugin import PluginMetadata, on_request, remote

__plugin_meta__ = PluginMetadata(name="blocking")

_release = threading.Event()
_waiting = 0
_lock = threading.Lock()


@remote()
def wait_for_release(tag: str) -> str:
    global _waiting
    with _lock:
        _waiting += 1
    _release.wait(timeout=60)
    return tag


@on_request("/blocking/wait")
async def wait(tag: str) -> str:
    return await wait_for_release.remote(tag)


@on_request("/blocking/waiting")
async def waiting() -> int:
    return _waiting


@on_request("/blocking/release", methods=["POST"])
async def release() -> bool:
    _release.set()
    return True
