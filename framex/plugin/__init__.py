"""The plugin-facing API (compatible with FrameX-kit plugins)."""

from framex.calls import call_plugin_api, get_plugin_config
from framex.plugin.base import BasePlugin
from framex.plugin.decorators import on_register, on_request
from framex.plugin.metadata import ApiType, PluginMetadata
from framex.plugin.proxy import on_proxy
from framex.remote import remote

# FrameX-kit's names (docs/migrating.md); imported last: `framex.kit` needs the above.
from framex.kit import get_plugin, load_builtin_plugins, load_plugins, register_proxy_func  # isort: skip
from framex.plugin.loader import PluginApi  # isort: skip

__all__ = [
    "ApiType",
    "BasePlugin",
    "PluginApi",
    "PluginMetadata",
    "call_plugin_api",
    "get_plugin",
    "get_plugin_config",
    "load_builtin_plugins",
    "load_plugins",
    "on_proxy",
    "on_register",
    "on_request",
    "register_proxy_func",
    "remote",
]
