"""A sync handler reporting what it sees of its caller's context from its worker thread."""

from __future__ import annotations

import threading

from framex.context import current_plugin
from framex.logs import current_request_id
from framex.plugin import PluginMetadata, on_request

__plugin_meta__ = PluginMetadata(name="sync_context")


@on_request("/sync_context")
def seen() -> dict[str, object]:
    plugin = current_plugin.get()
    return {
        "plugin": plugin.name if plugin is not None else None,
        "request_id": current_request_id(),
        "thread": threading.current_thread().name,
    }
