"""The dependency-injection container that wires one FrameX service.

``Container.adapter`` is a ``providers.Selector`` keyed by the ``adapter`` setting;
``registry`` holds the plugins and ``app`` the FastAPI application built from both.
Framework code reaches the active container with :func:`get_container`; an app made by
:func:`framex.create_app` makes its own container active while it handles a request,
so two containers in one process never see each other's plugins or adapter.
"""

from __future__ import annotations

import os
import threading
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

from dependency_injector import containers, providers

from framex.adapters.base import Adapter
from framex.adapters.local import LocalAdapter
from framex.config import Settings, load_settings, validate_settings
from framex.plugin.registry import PluginRegistry


def _ray_adapter(settings: Settings) -> Adapter:
    # Imported on demand: local mode must not need Ray installed.
    from framex.adapters.ray import RayAdapter

    return RayAdapter(settings)


def _app(container: Container) -> Any:
    from framex.http.app import build_app

    return build_app(container)


class Container(containers.DeclarativeContainer):
    """Wires settings, the execution adapter, the plugin registry and the app."""

    __self__ = providers.Self()
    config = providers.Configuration(strict=True)
    settings = providers.Singleton(validate_settings, config)
    adapter = providers.Selector(
        config.adapter,
        local=providers.Singleton(
            LocalAdapter,
            max_workers=config.local.max_workers,
            executor=config.local.executor,
            max_processes=config.local.max_processes,
        ),
        ray=providers.Singleton(_ray_adapter, settings=settings),
    )
    registry = providers.Singleton(PluginRegistry, settings=settings)
    app = providers.Singleton(_app, container=__self__)


def create_container(config_path: str | os.PathLike[str] | None = None, **overrides: Any) -> Container:
    """Build a container from a YAML file, the environment and ``overrides``.

    ``config_path`` None reads ``FRAMEX_CONFIG``, else ``config/local.yaml`` when it
    exists, else the built-in defaults. ``overrides`` take precedence over both; nest
    with ``__`` (``server__port=9000``) or pass dicts (``server={"port": 9000}``).
    Raises :class:`framex.errors.ConfigError` when the result is invalid.
    """
    settings = load_settings(config_path, overrides)
    container = Container()
    container.config.from_dict(settings.model_dump())
    return container


_active: ContextVar[Container | None] = ContextVar("framex_active_container", default=None)
_default: Container | None = None
_default_lock = threading.Lock()


def get_container() -> Container:
    """The active container: the one serving this request or set by :func:`use_container`.

    Without either, a default container is built once from the default configuration.
    """
    container = _active.get()
    if container is not None:
        return container
    container = _default
    if container is None:
        with _default_lock:
            if _default is None:
                _set_default(create_container())
            container = _default
    assert container is not None
    return container


def _set_default(container: Container | None) -> None:
    global _default
    _default = container


class use_container:  # noqa: N801 - used like a function: `use_container(c)` / `with use_container(c):`
    """Make ``container`` the active one.

    Called plainly it becomes the process-wide default; used as a context manager it is
    active inside the block (for this task or thread) and the previous default returns
    after it.
    """

    def __init__(self, container: Container) -> None:
        self.container = container
        self._previous = _default
        self._token: Token[Container | None] | None = None
        _set_default(container)

    def __enter__(self) -> Container:
        self._token = _active.set(self.container)
        return self.container

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            _active.reset(self._token)
            self._token = None
        _set_default(self._previous)


def activate(container: Container) -> Token[Container | None]:
    """Make ``container`` active in the current context; undo with :func:`deactivate`."""
    return _active.set(container)


def deactivate(token: Token[Container | None]) -> None:
    _active.reset(token)


def close_container(container: Container) -> None:
    """Release the container's adapter resources (thread pools, Ray connections)."""
    # Adapters are cheap to construct (pools and Ray start lazily), so asking the
    # selected provider for its instance never starts anything just to close it.
    selected = container.adapter.providers.get(container.config.adapter())
    if selected is not None:
        selected().close()
    container.reset_singletons()
