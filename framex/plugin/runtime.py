"""Running the plugins of one container: their instances, lifecycle and invocation.

:class:`framex.plugin.registry.PluginRegistry` holds what is loaded; the runtime makes
one instance of each plugin class, runs ``on_start`` / ``on_stop`` and calls handlers as
their plugin. :meth:`PluginRuntime.start` is the one way plugins start, whoever needs them
first: the app's lifespan, a request to an app without one, ``call_plugin_api``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any, NamedTuple, TypeVar

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from framex.context import current_plugin
from framex.errors import ApiNotFoundError, FrameXError, PluginStartError
from framex.plugin.loader import Plugin, PluginApi
from framex.plugin.registry import PluginRegistry

logger = logging.getLogger("framex.plugin")

T = TypeVar("T")

Forward = Callable[[PluginApi, dict[str, Any]], Awaitable[Any]]
"""Runs an API of a plugin class that lives elsewhere (a Ray Serve deployment)."""

_in_startup: ContextVar[bool] = ContextVar("framex_in_startup", default=False)


class PluginRuntime:
    """The running plugins of one container."""

    def __init__(self, registry: PluginRegistry) -> None:
        self.registry = registry
        self._handlers: dict[PluginApi, Callable[..., Any]] = {}
        self._plans: dict[PluginApi, _Plan] = {}
        self._instantiated: set[str] = set()
        self._pending: list[tuple[Plugin, Any]] = []
        self._started: list[tuple[Plugin, Any]] = []
        self._ready = False
        self._local_classes: set[type] | None = None
        self._forward: Forward | None = None
        self._start_task: asyncio.Future[None] | None = None
        self._states: dict[str, Any] = {}
        self.start_error: BaseException | None = None
        """Why the last start failed (``framex run`` reports it after the server gives up)."""
        registry.on_external_api(self._bind_external)
        registry.on_load(self._loaded)

    # -- instances ----------------------------------------------------------------

    def forward_classes(self, forward: Forward, keep: type | None = None) -> None:
        """Run the APIs of every plugin class except ``keep`` through ``forward``.

        Ray Serve mode: each plugin class is a deployment, so a process instantiates at
        most its own class and reaches the others through their deployment handles.
        """
        if self._instantiated:
            raise FrameXError("forward_classes() must be called before the plugins are instantiated.")
        self._forward = forward
        self._local_classes = {keep} if keep is not None else set()

    def is_local(self, api: PluginApi) -> bool:
        """Whether ``api`` is served by this process (not forwarded to a deployment)."""
        return api.owner is None or self._local_classes is None or api.owner in self._local_classes

    def instantiate(self) -> None:
        """Create one instance of each plugin class not instantiated yet, and bind its handlers."""
        self.registry.load_configured()
        new = [p for p in self.registry.plugins.values() if p.name not in self._instantiated]
        if not new:
            return
        self.registry.check_requirements()
        for plugin in new:
            config = self.registry.config_of(plugin)
            instances = {
                cls: self._construct(plugin, cls, config)
                for cls, _ in plugin.classes
                if self._local_classes is None or cls in self._local_classes
            }
            for api in plugin.apis:
                if api.owner is None:
                    self._handlers[api] = api.func
                elif api.owner in instances:
                    self._handlers[api] = getattr(instances[api.owner], api.func.__name__)
            self._pending += [(plugin, inst) for inst in instances.values()]
            if _module_hooks(plugin.module):
                self._pending.append((plugin, plugin.module))
            self._instantiated.add(plugin.name)
        self._ready = False  # the new plugins start on the next start()

    def freeze(self) -> None:
        """Load what the settings list, instantiate it and forbid further loading (an app serves it)."""
        self.instantiate()
        self.registry.freeze()

    def _construct(self, plugin: Plugin, cls: type, config: Any) -> Any:
        kwargs = {
            "config": config,
            "remote_apis": self._remote_apis(plugin),
        }
        params = inspect.signature(cls).parameters.values()
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            names = {p.name for p in params}
            kwargs = {k: v for k, v in kwargs.items() if k in names}
        token = current_plugin.set(plugin)
        try:
            instance = cls(**kwargs)
        except Exception as exc:
            raise PluginStartError(
                f"Plugin `{plugin.name}`: creating `{cls.__name__}` failed: {type(exc).__name__}: {exc}."
            ) from exc
        finally:
            current_plugin.reset(token)
        if config is not None and getattr(instance, "config", None) is None:
            instance.config = config
        return instance

    def _remote_apis(self, plugin: Plugin) -> dict[str, PluginApi]:
        """The required APIs known now; HTTP paths that plugins discovering APIs add come at start."""
        found: dict[str, PluginApi] = {}
        for name in plugin.required_remote_apis:
            try:
                found[name] = self.registry.get_api(name)
            except ApiNotFoundError:
                if not (self.registry.discovering and name.startswith("/")):
                    raise
        return found

    def _loaded(self, plugins: list[Plugin]) -> None:
        self._ready = False  # the new plugins start on the next start()

    def _bind_external(self, api: PluginApi) -> None:
        self._handlers[api] = api.func

    def state(self, plugin: str, make: Callable[[], T]) -> T:
        """What plugin ``plugin`` keeps for this service (clients, pools): made by ``make`` on first use."""
        found = self._states.get(plugin)
        if found is None:
            found = self._states[plugin] = make()
        return found

    # -- lifecycle ----------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Every loaded plugin is instantiated and its ``on_start`` has run."""
        return self._ready

    async def start(self) -> None:
        """Run ``on_start`` of every plugin not started yet.

        Plugins that discover APIs start first, then the others by ``priority`` (higher
        first). Concurrent callers wait for the same start; calls made from an
        ``on_start`` (``call_plugin_api`` of another plugin) do not wait for themselves.
        """
        if self._ready or _in_startup.get():
            return
        if self._start_task is None:
            self._start_task = asyncio.ensure_future(self._run_start())
        try:
            await asyncio.shield(self._start_task)
        except Exception as exc:
            self.start_error = exc
            raise
        finally:
            if self._start_task is not None and self._start_task.done():
                self._start_task = None  # a failed start may be retried

    async def _run_start(self) -> None:
        _in_startup.set(True)
        self.instantiate()
        self._pending.sort(key=lambda pair: (not pair[0].metadata.discovers_apis, -pair[0].metadata.priority))
        checked = False
        while self._pending:
            plugin, instance = self._pending[0]
            if not checked and not plugin.metadata.discovers_apis:
                # What the discovering plugins found is known: the others' start may call it.
                self.registry.check_requirements(final=True)
                checked = True
            hook = _hook(instance, "on_start")
            if hook is not None:
                current_plugin.set(plugin)
                try:
                    result = hook()
                    if inspect.isawaitable(result):
                        await result
                except Exception as exc:
                    raise PluginStartError(
                        f"Plugin `{plugin.name}`: `{_owner(instance)}.on_start()` failed: {type(exc).__name__}: {exc}."
                    ) from exc
            self._started.append(self._pending.pop(0))
        if not checked:
            self.registry.check_requirements(final=True)
        self._ready = True

    async def stop(self) -> None:
        """Run ``on_stop`` of the started plugins in reverse start order; errors are logged."""
        while self._started:
            plugin, instance = self._started.pop()
            hook = _hook(instance, "on_stop")
            if hook is None:
                continue
            token = current_plugin.set(plugin)
            try:
                result = hook()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("plugin %s: %s.on_stop() failed", plugin.name, _owner(instance))
            finally:
                current_plugin.reset(token)
        self._ready = False

    # -- invocation ---------------------------------------------------------------

    def handler(self, api: PluginApi) -> Callable[..., Any]:
        """The callable serving ``api`` in this process (a bound method or a function)."""
        handler = self._handlers.get(api)
        if handler is None:
            self.instantiate()
            handler = self._handlers[api]
        return handler

    def _plan(self, api: PluginApi) -> _Plan:
        plugin = self.registry.plugins.get(api.plugin)
        if not self.is_local(api):
            plan = _Plan(api.func, _FORWARD, plugin)
        else:
            handler = self.handler(api)
            if inspect.iscoroutinefunction(handler):
                kind = _ASYNC
            elif inspect.isasyncgenfunction(handler):
                kind = _ASYNC_GEN
            else:
                kind = _SYNC
            plan = _Plan(handler, kind, plugin)
        self._plans[api] = plan
        return plan

    def coroutine_plan(self, api: PluginApi) -> _Plan | None:
        """How to run ``api`` when its handler is a coroutine function run in this process:
        its caller awaits ``plan.handler(**kwargs)`` with ``current_plugin`` set to
        ``plan.plugin``, one coroutine fewer than :meth:`invoke`. None: use :meth:`invoke`."""
        plan = self._plans.get(api) or self._plan(api)
        return plan if plan.kind == _ASYNC else None

    async def invoke(self, api: PluginApi, kwargs: dict[str, Any]) -> Any:
        """Call an API's handler in this process, as its plugin.

        Sync handlers run in a worker thread; streaming handlers return an async
        iterator that runs as the plugin too. APIs of plugin classes served elsewhere
        (Ray Serve) are forwarded.
        """
        plan = self._plans.get(api) or self._plan(api)
        kind = plan.kind
        if kind == _FORWARD:
            assert self._forward is not None
            return await self._forward(api, kwargs)
        token = current_plugin.set(plan.plugin)
        try:
            if kind == _ASYNC:
                return await plan.handler(**kwargs)
            if kind == _ASYNC_GEN:
                return _as_plugin(plan.plugin, plan.handler(**kwargs))
            # AnyIO's worker thread runs the handler in a copy of this context (the plugin
            # marked above, the request id), as FastAPI runs sync endpoints.
            result = await run_in_threadpool(plan.handler, **kwargs)
            if inspect.isgenerator(result):
                return _as_plugin(plan.plugin, iterate_in_threadpool(result))
            return result
        finally:
            current_plugin.reset(token)


_ASYNC, _ASYNC_GEN, _SYNC, _FORWARD = range(4)


def _owner(instance: Any) -> str:
    return str(instance.__name__) if inspect.ismodule(instance) else type(instance).__name__


def _module_hooks(module: Any) -> bool:
    return _hook(module, "on_start") is not None or _hook(module, "on_stop") is not None


def _hook(owner: Any, name: str) -> Callable[[], Any] | None:
    """``owner.<name>``: a method of a plugin instance, or a function a plugin module
    defines itself (module-level ``on_start`` / ``on_stop``; imported ones do not count)."""
    hook = getattr(owner, name, None)
    if hook is None or not inspect.ismodule(owner):
        return hook
    return hook if inspect.isfunction(hook) and hook.__module__ == owner.__name__ else None


class _Plan(NamedTuple):
    """How to run one API, worked out on its first call."""

    handler: Callable[..., Any]
    kind: int
    plugin: Plugin | None
    """None for an API served elsewhere that no plugin of this container declares."""


async def _as_plugin(plugin: Plugin | None, items: AsyncIterator[Any]) -> AsyncIterator[Any]:
    # The generator body runs in its consumer's context: mark the plugin for each step only.
    try:
        while True:
            previous = current_plugin.get()
            current_plugin.set(plugin)
            try:
                item = await items.__anext__()
            except StopAsyncIteration:
                return
            finally:
                current_plugin.set(previous)
            yield item
    finally:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()
