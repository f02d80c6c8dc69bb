"""A FrameX-kit-shaped plugin module with metadata and a config class only (no APIs)."""

from pydantic import BaseModel

from framex.consts import VERSION
from framex.plugin.model import PluginMetadata


class MetaConfig(BaseModel):
    id: int = 1
    label: str = "meta"


__plugin_meta__ = PluginMetadata(
    name="kit meta",
    version=VERSION,
    description="Metadata only.",
    author="tests",
    url="https://example.invalid/kit_meta",
    required_remote_apis=[],
    config_class=MetaConfig,
)
