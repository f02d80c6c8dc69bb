"""FrameX-kit's ``framex.plugin.model`` import path: the same names, FrameX's objects."""

from framex.plugin.loader import Plugin, PluginApi
from framex.plugin.metadata import ApiType, PluginMetadata

__all__ = ["ApiType", "Plugin", "PluginApi", "PluginMetadata"]
