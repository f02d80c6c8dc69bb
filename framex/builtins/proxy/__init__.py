"""``proxy``: other services' routes under this service's API, and proxy functions.

- Mirrors the routes of each upstream in ``plugins.proxy.upstreams`` (read from its
  OpenAPI document at start-up) and forwards requests to them as they come.
- Makes those routes callable with ``call_plugin_api`` by their paths.
- Serves ``POST /api/v1/proxy/remote`` for the ``@on_proxy`` functions of this process,
  and calls the ones ``plugins.proxy.proxy_functions`` places on other services.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel, Field, ValidationError

from framex.builtins.proxy.config import ProxySettings
from framex.builtins.proxy.forward import call_upstream
from framex.builtins.proxy.state import PLUGIN, ProxyState
from framex.calls import get_plugin_config
from framex.consts import VERSION
from framex.context import get_container
from framex.plugin.decorators import on_request
from framex.plugin.metadata import PluginMetadata
from framex.plugin.proxy import (
    REMOTE_PATH,
    ProxyFunction,
    decode_arguments,
    decode_result,
    encode_arguments,
    encode_result,
)

__plugin_meta__ = PluginMetadata(
    name=PLUGIN,
    version=VERSION,
    description="Serves upstream services' routes and runs proxy functions on other FrameX services.",
    author="FrameX",
    # Started first, so the other plugins' on_start may call the upstreams' APIs.
    discovers_apis=True,
    config_class=ProxySettings,
)


def _state() -> ProxyState:
    runtime = get_container().runtime()
    return runtime.state(PLUGIN, lambda: ProxyState(runtime.registry, get_plugin_config(PLUGIN, ProxySettings)))


async def on_start() -> None:
    """Place the listed proxy functions on their services; read the upstreams' OpenAPI
    documents and mirror their routes."""
    state = _state()
    if state.settings.proxy_functions:
        get_container().proxy_functions().place(state.settings.function_home, call_remote_function)
    await state.start()


async def on_stop() -> None:
    """Stop retrying and close the connection pools."""
    await _state().stop()


class ProxyCall(BaseModel):  # type: ignore[no-redef]  # the pydantic plugin names its __init__ arguments `kwargs` too
    """A call of an ``@on_proxy`` function of this service."""

    func: str = Field(description="The function's `module.function` name.", max_length=300)
    arguments: dict[str, Any] = Field(default_factory=dict, alias="kwargs", description="Its arguments, as JSON.")


@on_request("/proxy/remote", methods=["POST"], tags=["proxy"])
async def call_proxy_function(call: ProxyCall) -> Any:
    """Run an `@on_proxy` function of this service; unknown names are 404."""
    record = get_container().proxy_functions().get(call.func)
    if record is None:
        raise HTTPException(404, f"No proxy function `{call.func}` on this service.")
    try:
        arguments = decode_arguments(record, call.arguments)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise HTTPException(422, errors) from None
    return encode_result(record, await record.func(**arguments))


async def call_remote_function(url: str, record: ProxyFunction, kwargs: dict[str, Any]) -> Any:
    """Run ``record`` on the FrameX service at ``url`` and decode its result."""
    upstream = _state().upstream(url)
    what = f"proxy function `{record.name}` on {url}"
    data = await call_upstream(upstream, "POST", REMOTE_PATH, b"", REMOTE_PATH, encode_arguments(record, kwargs), what)
    return decode_result(record, data)
