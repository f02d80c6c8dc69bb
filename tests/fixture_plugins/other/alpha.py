"""Same plugin name (`alpha`) as `collection.alpha`: loading both must fail."""

from framex.plugin import PluginMetadata

__plugin_meta__ = PluginMetadata(name="alpha again")
