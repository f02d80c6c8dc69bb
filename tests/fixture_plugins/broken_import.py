"""Deliberately broken: importing it raises."""

from framex.plugin import PluginMetadata

__plugin_meta__ = PluginMetadata(name="broken_import")

raise RuntimeError("broken on purpose: missing dependency `frobnicate`")
