"""Building the FastAPI application of one container."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.responses import PlainTextResponse, Response

from framex.consts import API_STR, VERSION
from framex.container import activate
from framex.http.auth import install_auth
from framex.http.cors import install_cors
from framex.http.envelope import envelope_response
from framex.http.errors import install_error_handlers
from framex.http.external import install_external_routes
from framex.http.limits import install_body_limit
from framex.http.observability import install_observability
from framex.http.routes import add_api_route
from framex.http.watchdog import start_watchdog

if TYPE_CHECKING:
    from framex.container import Container


def build_app(container: Container) -> FastAPI:
    """Assemble the app: built-in routes, then every HTTP API of the loaded plugins."""
    settings = container.settings()
    registry = container.registry()
    registry.freeze()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        activate(container)  # the lifespan runs in a task of its own
        try:
            await registry.start()
        except Exception as exc:
            app.state.framex_startup_error = exc  # for `framex run` to report after the server gives up
            raise
        if getattr(app.state, "framex_freeze_gc", False):
            # What start-up built lives as long as the process: keep it out of the
            # collector's full passes, which otherwise show up as latency spikes.
            gc.freeze()
        watchdog = None
        try:
            # Warns when a handler blocks the loop: a thread of its own, nothing per request.
            watchdog = start_watchdog(settings.server.loop_block_warn_ms, app.routes)
            app.state.framex_watchdog = watchdog
            yield
        finally:
            # Served requests not yet counted and logged (the server has finished serving).
            observability = getattr(app.state, "framex_observability", None)
            if observability is not None:
                observability.record()
            if watchdog is not None:
                watchdog.stop()
            await registry.stop()

    app = FastAPI(
        title=settings.server.title,
        version=VERSION,
        openapi_url=f"{API_STR}/openapi.json",
        docs_url="/docs",
        redoc_url="/redoc",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # The proxy's mirrored routes, as they are found; first, so the middleware added next wraps them.
    if registry.has_proxy:
        install_external_routes(app, registry)
    install_body_limit(app, settings.server.max_body_bytes)  # innermost: route errors reach the handlers
    install_auth(app, settings.auth)  # first: middleware added later wraps it, so it sees the 401s
    install_cors(app, settings.server.cors)  # after auth: preflights need no key, 401s get CORS headers
    # Plugin routes first: they carry the traffic, and routes are matched in order.
    for api in registry.apis:
        if api.is_http:
            add_api_route(app, container, api)

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

    # Last: the outermost middleware, so every response (auth's 401s, CORS answers) gets a
    # request id, is timed, counted and logged; the metrics route comes after the others.
    install_observability(app, container)
    app.state.framex_container = container
    return app
