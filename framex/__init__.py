"""FrameX: plugins served as one FastAPI service, heavy work behind ``@remote()``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from framex.calls import call_plugin_api, get_plugin_config
from framex.consts import API_STR, VERSION
from framex.container import Container, create_container
from framex.context import get_container, use_container
from framex.errors import FrameXError
from framex.plugin.base import BasePlugin
from framex.plugin.decorators import on_register, on_request
from framex.plugin.loader import Plugin
from framex.plugin.metadata import ApiType, PluginMetadata
from framex.plugin.proxy import on_proxy
from framex.remote import remote

# FrameX-kit's names (docs/migrating.md).
from framex.kit import get_plugin, logger, register_proxy_func  # isort: skip
from framex.plugin.loader import PluginApi  # isort: skip

if TYPE_CHECKING:
    from fastapi import FastAPI

__version__ = VERSION


def load_plugins(*paths: str) -> list[Plugin]:
    """Load plugins (dotted module or package paths) into the active container."""
    return get_container().registry().load(*paths)


def load_builtin_plugins(*names: str) -> list[Plugin]:
    """Load built-in plugins (``"echo"``, ...) into the active container."""
    return get_container().registry().load_builtin(*names)


def create_app(container: Container | None = None) -> FastAPI:
    """The FastAPI app of ``container`` (default: the active one), built once.

    Mount it in another application to embed FrameX; it serves this container's
    plugins only.
    """
    app: FastAPI = (container or get_container()).app()
    return app


def run(test_mode: bool = False, config_path: str | None = None, **overrides: Any) -> Any:
    """Serve the configured plugins; with ``test_mode=True`` return the app instead.

    ``overrides`` take precedence over the YAML file and the environment
    (``server__port=9000`` or ``server={"port": 9000}``).
    """
    from framex.kit import carry_loaded_plugins, translate_run_kwargs
    from framex.serve import serve

    overrides = translate_run_kwargs(overrides)
    if config_path or overrides:
        container = create_container(config_path, **overrides)
        carry_loaded_plugins(container)
    else:
        container = get_container()
    use_container(container)
    if test_mode:
        return create_app(container)
    serve(container)
    return None


__all__ = [
    "API_STR",
    "VERSION",
    "ApiType",
    "BasePlugin",
    "Container",
    "FrameXError",
    "PluginApi",
    "PluginMetadata",
    "call_plugin_api",
    "create_app",
    "create_container",
    "get_container",
    "get_plugin",
    "get_plugin_config",
    "load_builtin_plugins",
    "load_plugins",
    "logger",
    "on_proxy",
    "on_register",
    "on_request",
    "register_proxy_func",
    "remote",
    "run",
    "use_container",
]
