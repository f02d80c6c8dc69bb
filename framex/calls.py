"""``call_plugin_api`` and ``get_plugin_config``: what plugin code asks of its container."""

from __future__ import annotations

import inspect
from typing import Any, TypeVar

from pydantic import BaseModel

from framex.config import validate_plugin_config
from framex.context import current_plugin, get_container

M = TypeVar("M", bound=BaseModel)


async def call_plugin_api(api_name: str = "", /, **kwargs: Any) -> Any:
    """Call another plugin's API by HTTP path (``/api/v1/echo``) or function name.

    Works in handlers, in ``on_start``, in scripts and in tests. Returns the handler's
    own result (not the HTTP envelope); a streaming API returns an async iterator.
    Dicts passed for pydantic-model parameters are validated into the model. A plugin
    may only call APIs listed in its ``required_remote_apis`` (and its own).
    """
    if not api_name:
        api_name = _api_name_keyword(kwargs)
    container = get_container()
    plans = container.call_plans()
    plan = plans.get(api_name, current_plugin.get())
    arguments = plan.bind(kwargs)
    runtime = plans.runtime
    if not runtime.started:
        await runtime.start()
    api = plan.api
    tracing = container.call_observers().tracing
    if tracing is None or tracing.unsampled():
        return await runtime.invoke(api, arguments)
    attributes = {"framex.api": api.name, "framex.plugin": api.plugin}
    # A streaming API's span lasts until its stream ends.
    return await tracing.spanned(f"call {api_name}", attributes, runtime.invoke(api, arguments))


def _api_name_keyword(kwargs: dict[str, Any]) -> str:
    # FrameX-kit code calls `call_plugin_api(api_name="/api/v1/echo", ...)`.
    name = kwargs.pop("api_name", None)
    if not isinstance(name, str) or not name:
        raise TypeError("call_plugin_api() needs the API name: a path like `/api/v1/echo` or a function API name.")
    return name


def get_plugin_config(plugin_name: str, config_class: type[M]) -> M:
    """The ``plugins.<plugin_name>`` configuration validated into ``config_class``.

    Unknown keys are rejected with the list of accepted ones; a missing section gives
    the model's defaults.
    """
    if not (inspect.isclass(config_class) and issubclass(config_class, BaseModel)):
        raise TypeError(f"get_plugin_config: `config_class` must be a pydantic model, not {config_class!r}.")
    settings = get_container().settings()
    return validate_plugin_config(plugin_name, settings.plugins.get(plugin_name), config_class)
