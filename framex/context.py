"""Which container is active: the one plugin-facing code (``.remote()``, ``call_plugin_api``,
``get_plugin_config``) asks for its adapter, plugins and settings; and which plugin's code
is running.

It imports nothing else of FrameX, so every module can use it without an import cycle:
the container module registers how the process default is built (:func:`set_default_factory`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from framex.container import Container
    from framex.plugin.loader import Plugin

current_plugin: ContextVar[Plugin | None] = ContextVar("framex_current_plugin", default=None)
"""The plugin whose code is running; ``call_plugin_api`` checks its ``required_remote_apis``."""

_active: ContextVar[Any] = ContextVar("framex_active_container", default=None)
_factory: Callable[[], Any] | None = None
_lock = threading.Lock()

# The process default is the newest of the containers set by `use_container(c)` calls, or
# `_base`. A `with use_container(c):` takes its own entry out again when the block starts,
# so blocks that overlap in other tasks or threads can never leave theirs as the default.
_base: Any = None
_sets: list[tuple[weakref.ref[use_container], Any]] = []
_default: Any = None
"""What the two above make the default, kept ready for `get_container()`."""


def set_default_factory(factory: Callable[[], Any]) -> None:
    """How the process default container is built the first time it is asked for."""
    global _factory
    _factory = factory


def get_container() -> Container:
    """The active container: the one serving this request, or set by :func:`use_container`.

    Without either, the process default, built once from the default configuration.
    """
    container = _active.get()
    if container is not None:
        return container  # type: ignore[no-any-return]
    container = _default
    if container is None:
        container = _build_default()
    return container  # type: ignore[no-any-return]


def _build_default() -> Any:
    global _base
    with _lock:
        if _default is None:
            if _factory is None:
                raise RuntimeError("No container factory is registered: import `framex` first.")
            _base = _factory()
            _settle()
        return _default


def _settle() -> None:
    """Recompute ``_default``; entries of plain calls (their object is gone) become the base."""
    global _base, _default
    last_plain = -1
    for i, (owner, _) in enumerate(_sets):
        if owner() is None:
            last_plain = i
    if last_plain >= 0:
        _base = _sets[last_plain][1]
        del _sets[: last_plain + 1]
    _default = _sets[-1][1] if _sets else _base


def set_default(container: Container | None) -> None:
    """Make ``container`` the process default (None: build a new one when next asked)."""
    global _base
    with _lock:
        _base = container
        _sets.clear()
        _settle()


def activate(container: Container) -> Token[Any]:
    """Make ``container`` active in the current context (task or thread); undo with :func:`deactivate`."""
    return _active.set(container)


def deactivate(token: Token[Any]) -> None:
    """Undo an :func:`activate`."""
    _active.reset(token)


class use_container:  # noqa: N801 - used like a function: `use_container(c)` / `with use_container(c):`
    """Make ``container`` the active one.

    Called plainly, it becomes the process default. Used as a context manager, it is
    active inside the block for this task or thread only, and the default is as it was.
    """

    __slots__ = ("__weakref__", "_token", "container")

    def __init__(self, container: Container) -> None:
        self.container = container
        self._token: Token[Any] | None = None
        with _lock:
            _sets.append((weakref.ref(self), container))
            _settle()

    def __enter__(self) -> Container:
        with _lock:
            for i, (owner, _) in enumerate(_sets):
                if owner() is self:
                    del _sets[i]
                    break
            _settle()
        self._token = _active.set(self.container)
        return self.container

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            _active.reset(self._token)
            self._token = None
