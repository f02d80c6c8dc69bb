"""A plugin that finds an API when it starts (as a proxy finds other services' routes)."""

from __future__ import annotations

import inspect
from typing import Any

from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from framex.context import get_container
from framex.plugin import ApiType, PluginMetadata
from framex.plugin.decorators import ApiSpec
from framex.plugin.loader import ExternalApi
from tests.fixture_plugins.order_log import events

__plugin_meta__ = PluginMetadata(name="discovering", discovers_apis=True)  # priority 0: below `needs_found`

PATH = "/api/v1/found"


async def found() -> str:
    return "found at start"


class ServeFound:
    """The ASGI app of the found route (an instance: Starlette serves it as ASGI, not as an endpoint)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("served by what was found")(scope, receive, send)


async def on_start() -> None:
    events.append("discovering.on_start")
    api = ExternalApi(
        plugin="discovering",
        name=f"discovering:GET {PATH}",
        spec=ApiSpec(path=PATH, methods=("GET",), call_type=ApiType.HTTP, api_prefix=False),
        func=found,
        owner=None,
        signature=inspect.Signature(),
        return_type=Any,
        model_params={},
        route=ServeFound(),
        source="somewhere else",
    )
    get_container().runtime().registry.add_external_api(api)
