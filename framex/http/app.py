"""Building the FastAPI application of one container."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp

from framex.config import Settings
from framex.console.page import install_console
from framex.consts import API_STR, VERSION
from framex.context import activate
from framex.http.auth import ApiKeys, install_auth
from framex.http.cache import RequestCache, cache_layer
from framex.http.compiled import CompiledRoutes, FrameXApp
from framex.http.cors import install_cors
from framex.http.docs import install_docs
from framex.http.envelope import envelope_response
from framex.http.errors import install_error_handlers
from framex.http.external import install_external_routes
from framex.http.limits import install_body_limit
from framex.http.marks import RouteMarks
from framex.http.metrics import Metrics
from framex.http.observability import ObservabilityMiddleware, RequestRecords, install_observability
from framex.http.pipeline import Pipeline
from framex.http.routes import add_api_route
from framex.http.tracing import install_tracing
from framex.http.watchdog import LoopWatchdog

if TYPE_CHECKING:
    from framex.console.state import Console
    from framex.container import Container
    from framex.plugin.runtime import PluginRuntime
    from framex.tracing import Tracing

OPENAPI_URL = f"{API_STR}/openapi.json"


def build_app(
    container: Container,
    settings: Settings,
    runtime: PluginRuntime,
    cache: RequestCache | None,
    records: RequestRecords,
    metrics: Metrics | None,
    watchdog: LoopWatchdog | None,
    marks: RouteMarks,
    request_ids: Callable[[], str | None] | None = None,
    owns_process: bool = False,
    console: Console | None = None,
    tracing: Tracing | None = None,
    compiled: CompiledRoutes | None = None,
    api_keys: ApiKeys | None = None,
) -> FastAPI:
    """Assemble the app of ``container`` from its parts: built-in routes, then every HTTP
    API of the loaded plugins.

    ``request_ids`` gives the id a proxy in front assigned (Ray Serve's); ``owns_process``
    (``framex run``) keeps what start-up built out of the garbage collector's passes;
    ``console`` (None when it is off) gets its page and JSON routes.
    ``tracing`` (None: off) traces every request; ``compiled`` serves the plugin routes
    that compile without FastAPI's per-request machinery; ``api_keys`` (None: no rules)
    guards the paths ``auth.rules`` protects.
    """
    registry = runtime.registry
    runtime.freeze()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        activate(container)  # the lifespan runs in a task of its own
        await runtime.start()  # a failure is kept as `runtime.start_error` for `framex run`
        if owns_process:
            # What start-up built lives as long as the process: keep it out of the
            # collector's full passes, which otherwise show up as latency spikes.
            gc.freeze()
        try:
            if watchdog is not None:
                # Warns when a handler blocks the loop: a thread of its own, nothing per request.
                watchdog.start(app.routes)
            if console is not None:
                console.start()  # latency samples for its sparklines: a timer, nothing per request
            yield
        finally:
            if console is not None:
                console.stop()
            # Served requests not yet counted and logged (the server has finished serving).
            records.record()
            if watchdog is not None:
                watchdog.stop()
            await runtime.stop()
            if tracing is not None:
                tracing.flush()  # the spans of the last requests, before the process may end

    app = FrameXApp(
        title=settings.server.title,
        version=VERSION,
        openapi_url=OPENAPI_URL,
        docs_url=None,  # served offline by install_docs
        redoc_url=None,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # Routes of APIs that plugins find when they start, as they are found; first, so the
    # middleware added next wraps them.
    if registry.discovering:
        install_external_routes(app, registry)
    install_body_limit(app, settings.server.max_body_bytes)  # innermost: route errors reach the handlers
    install_auth(app, api_keys)  # first: middleware added later wraps it, so it sees the 401s
    install_cors(app, settings.server.cors)  # after auth: preflights need no key, 401s get CORS headers
    # Plugin routes first: they carry the traffic, and routes are matched in order.
    pipeline = Pipeline(container, runtime, marks if watchdog is not None else None)
    cached = cache_layer(cache, settings.cache)
    for api in registry.apis:
        if api.is_http:
            layer = cached if api.spec.options.get("cache") is not None else None
            add_api_route(app, pipeline, api, layer, compiled)

    @app.get("/health", response_class=PlainTextResponse, tags=["service"])
    async def health() -> str:
        """Liveness: answers `ok` once the plugins have started."""
        return "ok"

    @app.get("/ping", response_class=PlainTextResponse, tags=["service"])
    async def ping() -> str:
        return "pong"

    versions: dict[str, Any] = {
        "version": VERSION,
        "adapter": settings.adapter,
        "plugins": {p.name: p.metadata.version for p in registry.plugins.values()},
    }

    @app.get("/version", tags=["service"])
    async def version() -> Response:
        """The FrameX version, the backend and each plugin's version."""
        return envelope_response(versions)

    if console is not None:
        install_console(app, console)
    install_docs(app, settings.server.title, list(registry.plugins.values()), settings.auth.rules, OPENAPI_URL)
    install_tracing(app, tracing)  # inside the next one: the request has its id

    # Last: the outermost middleware, so every response (auth's 401s, CORS answers) gets a
    # request id, is timed, counted and logged; the metrics route comes after the others.
    marked = marks if watchdog is not None else None
    install_observability(app, records, metrics, settings.metrics.path, request_ids, marked)
    if compiled is not None:

        def observe(inner: ASGIApp) -> ObservabilityMiddleware:
            # The per-request work of the middleware above that compiled routes keep.
            return ObservabilityMiddleware(inner, records=records, proxy_ids=request_ids, marks=marked)

        compiled.attach(app, observe, tracing)
        app.framex_routes = compiled
    return app
