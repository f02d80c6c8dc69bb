"""FrameX-kit names with the kit's semantics, on top of FrameX's own API.

Kit plugins import these through the kit's paths (``framex.plugin.model``,
``framex.utils``, ``framex.log``, ``from framex import logger, get_plugin`` ...); FrameX's
own names keep FrameX's semantics. docs/migrating.md maps one to the other.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import warnings
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from framex.context import get_container
from framex.errors import ConfigError, FrameXError
from framex.plugin.loader import Plugin

if TYPE_CHECKING:
    from framex.container import Container
    from framex.plugin.runtime import PluginRuntime

# -- results of `BasePlugin._call_remote_api` -------------------------------------------


async def kit_result(result: Any) -> Any:
    """A ``call_plugin_api`` result as FrameX-kit's ``_call_remote_api`` returns it.

    A stream is read whole into a list of its items (the SSE strings a kit handler
    yields); a pydantic model becomes its dict by alias.
    """
    if hasattr(result, "__aiter__"):
        return [item async for item in result]
    if isinstance(result, BaseModel):
        return result.model_dump(by_alias=True)
    return result


# -- plugins ----------------------------------------------------------------------------


def load_plugins(*paths: str) -> list[Plugin]:
    """``framex.plugin.load_plugins``: load plugins (dotted names or folders) into the active container."""
    return get_container().registry().load(*paths)


def load_builtin_plugins(*names: str) -> list[Plugin]:
    """``framex.plugin.load_builtin_plugins``: load built-in plugins by name into the active container."""
    return get_container().registry().load_builtin(*names)


def get_plugin(plugin_id: str) -> Plugin | None:
    """The loaded plugin named ``plugin_id`` (the last part of its module name), or None."""
    return get_container().registry().plugins.get(plugin_id)


async def register_proxy_func(func: Callable[..., Any]) -> None:
    """Check that ``func`` is an ``@on_proxy`` function.

    The kit registered proxy functions with its proxy plugin at start; FrameX knows them
    when they are decorated, so this only confirms the decoration.
    """
    name = f"{func.__module__}.{func.__qualname__}"
    if get_container().proxy_functions().get(name) is None:
        raise FrameXError(f"`{name}` is not a proxy function. Decorate it with `@on_proxy()`.")


def health_check_of(runtime: PluginRuntime, plugin: str, cls: type) -> Callable[[], Any] | None:
    """The bound ``check_health`` of the instance of ``cls`` (FrameX-kit plugin classes may
    define one; Ray Serve replicas call it)."""
    apis = [api for api in runtime.registry.plugins[plugin].apis if api.owner is cls]
    if not apis:
        return None
    instance = getattr(runtime.handler(apis[0]), "__self__", None)
    check: Callable[[], Any] | None = getattr(instance, "check_health", None)
    return check


# -- logger -----------------------------------------------------------------------------


class KitLogger:
    """The loguru-style calls kit plugins make (``logger.success``, ``logger.opt(...)``),
    written to the standard ``logging`` logger ``framex.plugin``."""

    def __init__(self, name: str = "framex.plugin") -> None:
        self._logger = logging.getLogger(name)

    def _log(self, level: int, message: Any, *args: Any, **kwargs: Any) -> None:
        text = str(message)
        if args or kwargs:
            # loguru leaves a message it cannot format as it is.
            with contextlib.suppress(IndexError, KeyError, ValueError):
                text = text.format(*args, **kwargs)
        self._logger.log(level, "%s", text, stacklevel=3)

    def trace(self, message: Any, *args: Any, **kwargs: Any) -> None:
        self._log(logging.DEBUG, message, *args, **kwargs)

    def debug(self, message: Any, *args: Any, **kwargs: Any) -> None:
        self._log(logging.DEBUG, message, *args, **kwargs)

    def info(self, message: Any, *args: Any, **kwargs: Any) -> None:
        self._log(logging.INFO, message, *args, **kwargs)

    def success(self, message: Any, *args: Any, **kwargs: Any) -> None:
        self._log(logging.INFO, message, *args, **kwargs)

    def warning(self, message: Any, *args: Any, **kwargs: Any) -> None:
        self._log(logging.WARNING, message, *args, **kwargs)

    def error(self, message: Any, *args: Any, **kwargs: Any) -> None:
        self._log(logging.ERROR, message, *args, **kwargs)

    def critical(self, message: Any, *args: Any, **kwargs: Any) -> None:
        self._log(logging.CRITICAL, message, *args, **kwargs)

    def exception(self, message: Any, *args: Any, **kwargs: Any) -> None:
        self._logger.exception("%s", message, stacklevel=2)

    def opt(self, *args: Any, **kwargs: Any) -> KitLogger:
        """Options of loguru (colors, exception ...) change nothing here."""
        return self

    def bind(self, **kwargs: Any) -> KitLogger:
        return self


logger = KitLogger()


# -- `from framex.config import settings` -----------------------------------------------


class KitSettings:
    """A read-only view of the active container's settings under the kit's names.

    ``settings.server.port``, ``settings.server.use_ray``, ``settings.plugins``,
    ``settings.load_plugins``, ``settings.auth.rules`` ... Kit-only sections (``test``,
    ``sentry``, ``docs``) read as their kit defaults.
    """

    def __getattr__(self, name: str) -> Any:
        settings = get_container().settings()
        if name == "server":
            proxy_loaded = "proxy" in settings.load_builtin_plugins
            return SimpleNamespace(
                host=settings.server.host,
                port=settings.server.port,
                use_ray=settings.adapter == "ray",
                enable_proxy=proxy_loaded,
                num_cpus=settings.ray.num_cpus or -1,
                excluded_log_paths=list(settings.log.exclude_paths),
                ingress_config=dict(settings.ray.ingress_options),
            )
        if name in ("plugins", "load_plugins", "load_builtin_plugins", "auth", "cache"):
            return getattr(settings, name)
        if name == "base_ingress_config":
            return dict(settings.ray.deployment_defaults)
        if name == "test":
            return SimpleNamespace(disable_record_request=False, silent=False)
        if name == "sentry":
            return SimpleNamespace(enable=False, dsn="", env="", debug=False)
        raise AttributeError(f"FrameX has no setting `{name}` under the kit's names; see docs/migrating.md.")


settings = KitSettings()


# -- `framex.run(...)` with the kit's keyword names --------------------------------------

_RUN_KWARGS: dict[str, str] = {
    "server_host": "server__host",
    "server_port": "server__port",
    "num_cpus": "ray__num_cpus",
}
_RUN_IGNORED = {"dashboard_host", "dashboard_port", "reversion", "blocking"}


def translate_run_kwargs(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``framex.run(server_port=..., use_ray=..., enable_proxy=...)`` as FrameX overrides.

    Warns (``DeprecationWarning``) once per call that uses a kit name, naming the
    FrameX spelling.
    """
    result: dict[str, Any] = {}
    used: list[str] = []
    for key, value in overrides.items():
        if key in _RUN_KWARGS:
            used.append(f"{key}= -> {_RUN_KWARGS[key]}=")
            if not (key == "num_cpus" and isinstance(value, int) and value <= 0):
                result[_RUN_KWARGS[key]] = value
        elif key == "use_ray":
            used.append("use_ray= -> adapter='ray'|'local'")
            if value is not None:
                result["adapter"] = "ray" if value else "local"
        elif key == "enable_proxy":
            used.append("enable_proxy= -> load_builtin_plugins=[..., 'proxy']")
            if value:
                result["_enable_proxy"] = True
        elif key in _RUN_IGNORED:
            used.append(f"{key}= (no equivalent, ignored)")
        else:
            result[key] = value
    if result.pop("_enable_proxy", False):
        builtins = list(result.get("load_builtin_plugins") or get_container().settings().load_builtin_plugins)
        if "proxy" not in builtins:
            builtins.append("proxy")
        result["load_builtin_plugins"] = builtins
    if used:
        warnings.warn(
            "framex.run(): FrameX-kit keyword arguments are deprecated: "
            + "; ".join(used)
            + ". See docs/migrating.md.",
            DeprecationWarning,
            stacklevel=3,
        )
    return result


def carry_loaded_plugins(container: Container) -> None:
    """Load into ``container`` the plugins loaded with ``framex.load_*`` into the active one.

    ``framex.run(test_mode=True, **overrides)`` builds a new container; plugins loaded
    before must not be dropped on the way. Without a usable active container (its
    configuration is invalid) there is nothing to carry.
    """
    try:
        previous = get_container()
    except ConfigError:
        return
    if previous is container:
        return
    registry = previous.registry()
    modules = [plugin.module.__name__ for plugin in registry.plugins.values()]
    if modules:
        container.registry().load(*modules)


def accepts(func: Callable[..., Any], name: str) -> bool:
    """Whether ``func`` takes a parameter ``name`` (or ``**kwargs``)."""
    params = inspect.signature(func).parameters.values()
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in params)


__all__ = [
    "KitLogger",
    "KitSettings",
    "carry_loaded_plugins",
    "get_plugin",
    "kit_result",
    "load_builtin_plugins",
    "load_plugins",
    "logger",
    "register_proxy_func",
    "settings",
    "translate_run_kwargs",
]
