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
        """Call another plugin's API with FrameX-kit's result shape.

        Unlike ``call_plugin_api``, a stream is returned read whole as a list of its
        items, and a pydantic model as its dict by alias; the result then passes through
        :meth:`_post_call_remote_api_hook`.
        """
        from framex.calls import call_plugin_api
        from framex.kit import kit_result

        result = await kit_result(await call_plugin_api(api_name, **kwargs))
        return self._post_call_remote_api_hook(result)

    def _post_call_remote_api_hook(self, data: Any) -> Any:
        """Override to post-process every :meth:`_call_remote_api` result."""
        return data

    def check_health(self) -> None:
        """Ray Serve calls it to check a replica; raise to report it unhealthy."""
