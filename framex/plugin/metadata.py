"""What a plugin declares about itself: ``__plugin_meta__`` and the API call types."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ApiType(StrEnum):
    """How an ``@on_request`` handler is exposed."""

    HTTP = "http"
    """Served as an HTTP route (and callable by its path)."""
    FUNC = "func"
    """Only callable through ``call_plugin_api("<plugin>.<Class>.<method>")``."""
    ALL = "all"
    """Both."""


class PluginMetadata(BaseModel):
    """The ``__plugin_meta__`` every plugin module defines."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = Field(description="Human-readable plugin name.")
    version: str = "0.0.0"
    description: str = ""
    author: str = ""
    url: str = ""
    required_remote_apis: list[str] = Field(
        default_factory=list,
        description="APIs of other plugins this plugin calls with call_plugin_api (paths or function names).",
    )
    priority: int = Field(0, description="Plugins with a higher priority start first.")
    discovers_apis: bool = Field(
        False,
        description=(
            "The plugin adds APIs when it starts (found elsewhere, e.g. other services' routes): it starts "
            "before the plugins that do not, and their `required_remote_apis` HTTP paths are checked after it."
        ),
    )
    tags: list[str] = Field(default_factory=list)
    config_class: type[BaseModel] | None = Field(
        None, description="Pydantic model of the plugin's `plugins.<name>` configuration."
    )
