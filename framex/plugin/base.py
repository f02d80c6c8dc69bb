"""``BasePlugin``: the optional base class of plugin classes."""

from __future__ import annotations

from typing import Any


class BasePlugin:
    """Base class for ``@on_register()`` plugin classes.

    FrameX creates one instance per container (one per replica in Ray mode), passing
    ``config`` (the validated ``config_class`` instance, or None) and ``remote_apis``.
    ``on_start`` is awaited before the service takes traffic; ``on_stop`` at shutdown.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.config: Any = kwargs.get("config")
        self.remote_apis: dict[str, Any] = kwargs.get("remote_apis", {})

    async def on_start(self) -> None:
        """Prepare the plugin (open clients, warm caches); awaited before traffic."""

    async def on_stop(self) -> None:
        """Release what ``on_start`` acquired; awaited at shutdown."""

    async def _call_remote_api(self, api_name: str, **kwargs: Any) -> Any:
        # FrameX-kit plugins call other plugins through this method.
        from framex.calls import call_plugin_api

        return await call_plugin_api(api_name, **kwargs)
