"""A plugin that imports another module's hook functions: they are not its own hooks."""

from __future__ import annotations

from framex.plugin import PluginMetadata
from tests.fixture_plugins.module_hooks import on_start, on_stop  # noqa: F401

__plugin_meta__ = PluginMetadata(name="imported_hooks")
