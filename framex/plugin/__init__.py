"""The plugin-facing API (compatible with FrameX-kit plugins)."""

from framex.calls import call_plugin_api, get_plugin_config
from framex.plugin.base import BasePlugin
from framex.plugin.decorators import on_register, on_request
from framex.plugin.metadata import ApiType, PluginMetadata
from framex.plugin.proxy import on_proxy
from framex.remote import remote

__all__ = [
    "ApiType",
    "BasePlugin",
    "PluginMetadata",
    "call_plugin_api",
    "get_plugin_config",
    "on_proxy",
    "on_register",
    "on_request",
    "remote",
]
