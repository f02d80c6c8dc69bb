"""Requires an API nobody serves."""

from framex.plugin import PluginMetadata

__plugin_meta__ = PluginMetadata(name="needs_missing", required_remote_apis=["/api/v1/not_served"])
