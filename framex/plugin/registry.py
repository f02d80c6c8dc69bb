"""The plugins of one container: loading, lookup, instances, lifecycle and invocation."""

from __future__ import annotations

import asyncio
import contextvars
import difflib
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any, NamedTuple

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from framex.config import Settings, validate_plugin_config
from framex.errors import (
    ApiNotDeclaredError,
    ApiNotFoundError,
    FrameXError,
    PluginDefinitionError,
    PluginLoadError,
    PluginStartError,
)
from framex.plugin.loader import BUILTIN_PACKAGE, ExternalApi, Plugin, PluginApi, expand, full_path, read_plugin

logger = logging.getLogger("framex.plugin")

Forward = Callable[["PluginApi", dict[str, Any]], Awaitable[Any]]
"""Runs an API of a plugin class that lives elsewhere (a Ray Serve deployment)."""

current_plugin: ContextVar[Plugin | None] = ContextVar("framex_current_plugin", default=None)
"""The plugin whose code is running; ``call_plugin_api`` checks its ``required_remote_apis``."""

_in_startup: ContextVar[bool] = ContextVar("framex_in_startup", default=False)

PROXY_MODULE = f"{BUILTIN_PACKAGE}.proxy"
"""With this plugin loaded, required HTTP APIs may be served by upstreams it finds at start."""


class PluginRegistry:
    """Every plugin loaded into one container, their APIs and their instances."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.plugins: dict[str, Plugin] = {}
        self._by_name: dict[str, PluginApi] = {}
        self._by_path: dict[str, list[PluginApi]] = {}
        self._routes: dict[tuple[str, str], PluginApi] = {}
        self._handlers: dict[PluginApi, Callable[..., Any]] = {}
        self._plans: dict[PluginApi, _Plan] = {}
        self._instantiated: set[str] = set()
        self._pending: list[tuple[Plugin, Any]] = []
        self._started: list[tuple[Plugin, Any]] = []
        self._ready = False
        self._configured = False
        self._frozen = False
        self._local_classes: set[type] | None = None
        self._forward: Forward | None = None
        self._start_task: asyncio.Future[None] | None = None
        self.external_apis: list[ExternalApi] = []
        self._external_listeners: list[Callable[[ExternalApi], None]] = []

    # -- loading ------------------------------------------------------------------

    def load(self, *paths: str) -> list[Plugin]:
        """Load plugins from dotted module or package paths; return the new ones."""
        if self._frozen:
            raise FrameXError(
                f"Cannot load {', '.join(map(repr, paths))}: the app of this container is already built. "
                "Load plugins before `create_app()` (or list them in `load_plugins`)."
            )
        added: list[Plugin] = []
        for path in paths:
            for module in expand(path):
                if any(p.module is module for p in self.plugins.values()):
                    continue
                plugin = read_plugin(module)
                self._add(plugin)
                added.append(plugin)
        if added:
            self._ready = False  # the new plugins start on the next start()
        return added

    def load_builtin(self, *names: str) -> list[Plugin]:
        """Load built-in plugins (``echo``, ...) by name."""
        added = []
        for name in names:
            try:
                added += self.load(f"{BUILTIN_PACKAGE}.{name}")
            except PluginLoadError as exc:
                if isinstance(exc.__cause__, ModuleNotFoundError):
                    raise PluginLoadError(f"There is no built-in plugin `{name}`.") from exc
                raise
        return added

    def load_configured(self) -> None:
        """Load what the settings list (``load_builtin_plugins`` then ``load_plugins``), once."""
        if self._configured:
            return
        self.load_builtin(*self.settings.load_builtin_plugins)
        self.load(*self.settings.load_plugins)
        self._configured = True

    def _add(self, plugin: Plugin) -> None:
        if (other := self.plugins.get(plugin.name)) is not None:
            raise PluginLoadError(
                f"Plugin `{plugin.name}` is already loaded from `{other.module.__name__}`; "
                f"`{plugin.module.__name__}` has the same name. Rename one of the modules."
            )
        routes: dict[tuple[str, str], PluginApi] = {}
        for api in plugin.apis:
            if api.is_http and api.path is not None:
                for method in api.spec.methods:
                    key = (method, api.path)
                    clash = self._routes.get(key) or routes.get(key)
                    if clash is not None:
                        raise PluginDefinitionError(
                            f"`{method} {api.path}` is declared twice: by `{clash.name}` and by `{api.name}`. "
                            "Give one of them another path or method."
                        )
                    routes[key] = api
        self.config_of(plugin)  # invalid plugin config stops loading, not the first request
        self.plugins[plugin.name] = plugin
        self._routes.update(routes)
        for api in plugin.apis:
            self._by_name[api.name] = api
            if api.is_http and api.path is not None:
                self._by_path.setdefault(api.path, []).append(api)
        logger.debug("loaded plugin %s with %d API(s)", plugin.name, len(plugin.apis))

    def config_of(self, plugin: Plugin) -> Any:
        """The plugin's typed configuration, or None when it declares no ``config_class``."""
        model = plugin.metadata.config_class
        if model is None:
            return None
        return validate_plugin_config(plugin.name, self.settings.plugins.get(plugin.name), model)

    def check_requirements(self, final: bool = False) -> None:
        """Fail when a plugin requires an API that no loaded plugin provides.

        With the proxy plugin loaded, HTTP paths may come from its upstreams, which are
        known once it has started: those are only checked when ``final``.
        """
        has_proxy = self.has_proxy
        proxied = has_proxy and not final
        for plugin in self.plugins.values():
            for wanted in plugin.required_remote_apis:
                if wanted in self._by_name or wanted in self._by_path or (proxied and wanted.startswith("/")):
                    continue
                where = " and no upstream of the proxy plugin serves it" if has_proxy else ""
                raise ApiNotFoundError(
                    f"Plugin `{plugin.name}` requires API `{wanted}` (in `required_remote_apis`), but no "
                    f"loaded plugin provides it{where}.{self._suggest(wanted)} Load the plugin that serves it."
                )

    @property
    def has_proxy(self) -> bool:
        """The proxy plugin is loaded: external APIs may be added at start."""
        return any(p.module.__name__ == PROXY_MODULE for p in self.plugins.values())

    def add_external_api(self, api: ExternalApi) -> None:
        """Make an API served elsewhere callable by its path (and routed, by the app's listener)."""
        assert api.path is not None
        for method in api.spec.methods:
            if self.serves(method, api.path):
                raise FrameXError(f"`{method} {api.path}` is served already; an external API cannot replace it.")
        self._by_name[api.name] = api
        self._by_path.setdefault(api.path, []).append(api)
        self._handlers[api] = api.func
        self.external_apis.append(api)
        for listener in self._external_listeners:
            listener(api)

    def serves(self, method: str, path: str) -> bool:
        """Whether ``method path`` is served already (by a plugin or an external API)."""
        if (method, path) in self._routes:
            return True
        return any(method in api.spec.methods for api in self._by_path.get(path, ()))

    def on_external_api(self, listener: Callable[[ExternalApi], None]) -> None:
        """Call ``listener`` with every external API, those added so far included."""
        self._external_listeners.append(listener)
        for api in self.external_apis:
            listener(api)

    # -- lookup -------------------------------------------------------------------

    @property
    def apis(self) -> list[PluginApi]:
        return [api for plugin in self.plugins.values() for api in plugin.apis]

    def get_api(self, name: str) -> PluginApi:
        """Find an API by function name (``echo.EchoPlugin.confess``) or HTTP path."""
        api = self._by_name.get(name)
        if api is not None:
            return api
        candidates = self._by_path.get(full_path(name)) if name.startswith("/") else None
        if not candidates:
            raise ApiNotFoundError(
                f"No loaded plugin provides API `{name}`.{self._suggest(name)} Check the name and that "
                "its plugin is loaded."
            )
        if len(candidates) > 1:
            listed = ", ".join(f"{'/'.join(a.spec.methods)}: `{a.name}`" for a in candidates)
            raise ApiNotFoundError(f"`{name}` is served by several handlers ({listed}); call one by its function name.")
        return candidates[0]

    def _suggest(self, name: str) -> str:
        close = difflib.get_close_matches(name, [*self._by_name, *self._by_path], n=3)
        return f" Did you mean {', '.join(f'`{c}`' for c in close)}?" if close else ""

    def check_declared(self, caller: Plugin | None, api: PluginApi, requested: str) -> None:
        """Raise when ``caller`` calls another plugin's API it did not declare."""
        if caller is None or caller.name == api.plugin:
            return
        declared = caller.required_remote_apis
        if api.name in declared or (api.path is not None and api.path in declared):
            return
        raise ApiNotDeclaredError(
            f"Plugin `{caller.name}` called `{requested}` without declaring it. Add `{api.label}` to "
            f"`required_remote_apis` in its `__plugin_meta__`."
        )

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
        return api.owner is None or self._local_classes is None or api.owner in self._local_classes

    def instantiate(self) -> None:
        """Create one instance of each plugin class not instantiated yet, and bind its handlers."""
        new = [p for p in self.plugins.values() if p.name not in self._instantiated]
        if not new:
            return
        self.check_requirements()
        for plugin in new:
            config = self.config_of(plugin)
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

    def freeze(self) -> None:
        """Forbid further loading: an app now serves exactly these plugins."""
        self.load_configured()
        self.instantiate()
        self._frozen = True

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
        """The required APIs known now; paths an upstream of the proxy serves are added at start."""
        found: dict[str, PluginApi] = {}
        for name in plugin.required_remote_apis:
            try:
                found[name] = self.get_api(name)
            except ApiNotFoundError:
                if not (self.has_proxy and name.startswith("/")):
                    raise
        return found

    # -- lifecycle ----------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Every loaded plugin is instantiated and its ``on_start`` has run."""
        return self._ready

    async def start(self) -> None:
        """Run ``on_start`` of every plugin not started yet (higher ``priority`` first).

        Concurrent callers wait for the same start; calls made from an ``on_start``
        (``call_plugin_api`` of another plugin) do not wait for themselves.
        """
        if self._ready or _in_startup.get():
            return
        if self._start_task is None:
            self._start_task = asyncio.ensure_future(self._run_start())
        try:
            await asyncio.shield(self._start_task)
        finally:
            if self._start_task is not None and self._start_task.done():
                self._start_task = None  # a failed start may be retried

    async def _run_start(self) -> None:
        _in_startup.set(True)
        self.instantiate()
        self._pending.sort(key=lambda pair: -pair[0].metadata.priority)
        checked = False
        while self._pending:
            plugin, instance = self._pending[0]
            if not checked and plugin.module.__name__ != PROXY_MODULE:
                # The proxy has found its upstreams' APIs: the others' start may call them.
                self.check_requirements(final=True)
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
            self.check_requirements(final=True)
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
        if not self.is_local(api):
            plan = _Plan(api.func, _FORWARD, self.plugins[api.plugin])
        else:
            handler = self.handler(api)
            if inspect.iscoroutinefunction(handler):
                kind = _ASYNC
            elif inspect.isasyncgenfunction(handler):
                kind = _ASYNC_GEN
            else:
                kind = _SYNC
            plan = _Plan(handler, kind, self.plugins[api.plugin])
        self._plans[api] = plan
        return plan

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
            ctx = contextvars.copy_context()
            result = await run_in_threadpool(functools.partial(ctx.run, plan.handler, **kwargs))
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
    plugin: Plugin


async def _as_plugin(plugin: Plugin, items: AsyncIterator[Any]) -> AsyncIterator[Any]:
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
