"""The dependency-injection container: the table of contents of one FrameX service.

Every part of a service is a provider here, wired from one validated ``Settings``:
the execution backends (``adapters``, a ``Selector`` keyed by the ``adapter`` setting)
and the one selected (``adapter``), what is loaded (``registry``) and running
(``runtime``) and what ``call_plugin_api`` resolved (``call_plans``), the request cache, the loop watchdog and the
marks it reads, metrics and the access records, the ``@on_proxy`` function table, and
the FastAPI ``app`` built from them. Override any of them the dependency-injector way
(``with container.adapter.override(fake): ...``); ``close_container`` releases what
they hold. Which container is *active* is :mod:`framex.context`'s business.
"""

from __future__ import annotations

import os
from typing import Any

from dependency_injector import containers, providers

from framex.adapters.base import Adapter
from framex.adapters.carry import WorkerSetup
from framex.adapters.local import LocalAdapter
from framex.batching import Batches
from framex.config import CacheSettings, Settings, load_settings
from framex.console.state import console_for
from framex.context import activate, deactivate, get_container, set_default_factory, use_container
from framex.http.app import build_app
from framex.http.auth import api_keys_for
from framex.http.cache import RequestCache
from framex.http.compiled import CompiledRoutes
from framex.http.marks import RouteMarks
from framex.http.metrics import Metrics, metrics_for
from framex.http.observability import RequestRecords
from framex.http.watchdog import watchdog_for
from framex.plugin.call_plans import CallPlans
from framex.plugin.proxy import ProxyFunctions
from framex.plugin.registry import PluginRegistry
from framex.plugin.runtime import PluginRuntime
from framex.remote import CallObservers
from framex.tracing import Tracing, tracing_for

__all__ = [
    "Container",
    "activate",
    "close_container",
    "create_container",
    "deactivate",
    "get_container",
    "use_container",
]


def _ray_adapter(settings: Settings, tracing: Tracing | None, worker_setup: WorkerSetup) -> Adapter:
    # Imported on demand: local mode must not need Ray installed.
    from framex.adapters.ray import RayAdapter

    return RayAdapter(settings, tracing, worker_setup)


def _worker_setup(settings: Settings, tracing: Tracing | None) -> WorkerSetup:
    return WorkerSetup(settings.log, settings.tracing if tracing is not None else None)


def _adapter_name(settings: Settings) -> str:
    return settings.adapter


def _selected(adapter: Adapter) -> Adapter:
    return adapter


def _call_observers(metrics: Metrics | None, tracing: Tracing | None) -> CallObservers:
    if metrics is None:
        return CallObservers(tracing=tracing)
    return CallObservers(metrics.observe_call, metrics.observe_batch, tracing)


def _request_cache(settings: CacheSettings) -> RequestCache | None:
    return RequestCache(settings) if settings.enabled else None


class Container(containers.DeclarativeContainer):
    """Wires one service. Build it with :func:`create_container`."""

    __self__ = providers.Self()

    settings = providers.Dependency(instance_of=Settings)
    """The one validated configuration."""

    tracing = providers.Singleton(tracing_for, settings.provided.tracing)
    """OpenTelemetry tracing (None with ``tracing.enabled: false``); ``close_container`` sends what waits."""
    worker_setup = providers.Singleton(_worker_setup, settings, tracing)
    """How worker processes of ``@remote`` work log and trace."""

    adapter_name = providers.Singleton(_adapter_name, settings)
    adapters = providers.Selector(
        adapter_name,
        local=providers.Singleton(
            LocalAdapter,
            max_workers=settings.provided.local.max_workers,
            executor=settings.provided.local.executor,
            max_processes=settings.provided.local.max_processes,
            tracing=tracing,
            worker_setup=worker_setup,
        ),
        ray=providers.Singleton(_ray_adapter, settings=settings, tracing=tracing, worker_setup=worker_setup),
    )
    """Every backend, by name; the ``adapter`` setting selects one."""
    adapter = providers.Singleton(_selected, adapters)
    """Runs ``@remote`` work: the selected backend. ``.remote()`` resolves it at every call,
    so it is kept here once selected (one provider call, not a selection each time)."""

    registry = providers.Singleton(PluginRegistry, settings=settings)
    """What is loaded: plugins, their APIs and routes."""
    runtime = providers.Singleton(PluginRuntime, registry=registry)
    """Running them: instances, ``on_start`` / ``on_stop``, calls."""
    call_plans = providers.Singleton(CallPlans, runtime=runtime)
    """What ``call_plugin_api`` resolved: the API each name finds for each calling plugin."""
    proxy_functions = providers.Singleton(ProxyFunctions)
    """The ``@on_proxy`` functions this service serves, and where the others run."""

    cache = providers.Singleton(_request_cache, settings.provided.cache)
    """The request cache (None with ``cache.enabled: false``)."""
    route_marks = providers.Singleton(RouteMarks)
    """Which route each task on the loop serves, for the watchdog."""
    watchdog = providers.Singleton(watchdog_for, settings.provided.server.loop_block_warn_ms, route_marks)
    """The event-loop watchdog (None with ``server.loop_block_warn_ms: 0``); the app's lifespan starts it."""
    metrics_dir: providers.Object[str | None] = providers.Object(None)
    """Where worker processes share their metrics (``framex run --workers``), or None."""
    metrics = providers.Singleton(metrics_for, settings.provided.metrics.enabled, watchdog, metrics_dir)
    """Prometheus metrics (None with ``metrics.enabled: false``)."""
    call_observers = providers.Singleton(_call_observers, metrics, tracing)
    """Who hears of every ``.remote()`` call, batch and plugin call (metrics and tracing, when on)."""
    batches = providers.Singleton(Batches)
    """The batchers gathering calls of batched ``@remote`` functions."""
    request_records = providers.Singleton(
        RequestRecords,
        metrics=metrics,
        access_log=settings.provided.log.access_log,
        exclude_paths=settings.provided.log.exclude_paths,
    )
    """Finished requests waiting to be counted and logged."""
    console = providers.Singleton(
        console_for,
        settings=settings,
        registry=registry,
        adapter=adapter.provider,
        metrics=metrics,
        marks=route_marks,
        watchdog=watchdog,
    )
    """The live console (None with ``console.enabled: false``); the app serves its page and JSON."""
    request_ids: providers.Object[Any] = providers.Object(None)
    """Where a proxy in front gets request ids (Ray Serve's ingress overrides it), or None."""
    owns_process: providers.Object[bool] = providers.Object(False)
    """True under ``framex run``: the app may freeze start-up objects out of the GC."""

    api_keys = providers.Singleton(api_keys_for, settings.provided.auth)
    """The API keys ``auth.rules`` asks for, checked by the auth middleware and the compiled
    path alike (None without rules)."""
    compiled_routes = providers.Singleton(CompiledRoutes, settings=settings, api_keys=api_keys)
    """Plugin routes compiled into endpoints of their own, and the routes left to FastAPI's path."""
    app = providers.Singleton(
        build_app,
        container=__self__,
        settings=settings,
        runtime=runtime,
        cache=cache,
        records=request_records,
        metrics=metrics,
        watchdog=watchdog,
        marks=route_marks,
        tracing=tracing,
        request_ids=request_ids,
        owns_process=owns_process,
        console=console,
        compiled=compiled_routes,
        api_keys=api_keys,
    )
    """The FastAPI application, built once from the providers above."""


def create_container(config_path: str | os.PathLike[str] | None = None, **overrides: Any) -> Container:
    """Build a container from a YAML file, the environment and ``overrides``.

    ``config_path`` None reads ``FRAMEX_CONFIG``, else ``config/local.yaml`` when it
    exists, else the built-in defaults. ``overrides`` take precedence over both; nest
    with ``__`` (``server__port=9000``) or pass dicts (``server={"port": 9000}``). A None
    value means "not given" (as for an unset CLI flag); set a setting to null inside a
    dict (``server={"max_body_bytes": None}``).
    Raises :class:`framex.errors.ConfigError` when the result is invalid.
    """
    return container_of(load_settings(config_path, overrides))


def container_of(settings: Settings) -> Container:
    """A container wired from ``settings`` as they are."""
    return Container(settings=settings)


def close_container(container: Container) -> None:
    """Release what the container's providers hold (thread pools, the watchdog's thread, Ray
    connections, shared metrics files, the span exporter) and forget them; the plugins'
    ``on_stop`` runs in the app's lifespan."""
    # Adapters and the watchdog are cheap to make (pools, threads and Ray start on first
    # use), so asking for them never starts anything just to close it.
    selected = container.adapters.providers.get(container.settings().adapter)
    if selected is not None:
        selected().close()
    watchdog = container.watchdog()
    if watchdog is not None:
        watchdog.stop()
    metrics = container.metrics()
    if metrics is not None:
        metrics.close()
    if container.settings().tracing.enabled:
        tracing = container.tracing()
        if tracing is not None:
            tracing.shutdown()  # sends the spans still waiting
    container.reset_singletons()


set_default_factory(create_container)
