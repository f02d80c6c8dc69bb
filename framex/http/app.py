"""Building the FastAPI application of one container."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from framex.consts import API_STR, VERSION
from framex.container import activate, deactivate
from framex.http.envelope import envelope_response
from framex.http.errors import install_error_handlers
from framex.http.routes import add_api_route

if TYPE_CHECKING:
    from framex.container import Container


class ContainerScope:
    """Makes the app's container the active one while it handles anything.

    It also starts the plugins on the first request when no lifespan did (an app
    mounted inside another app does not receive lifespan events).
    """

    def __init__(self, app: ASGIApp, container: Container) -> None:
        self.app = app
        self.container = container
        self.registry = container.registry()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = activate(self.container)
        try:
            if scope["type"] != "lifespan" and not self.registry.started:
                await self.registry.start()
            await self.app(scope, receive, send)
        finally:
            deactivate(token)


def build_app(container: Container) -> FastAPI:
    """Assemble the app: built-in routes, then every HTTP API of the loaded plugins."""
    settings = container.settings()
    registry = container.registry()
    registry.freeze()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await registry.start()
        except Exception as exc:
            app.state.framex_startup_error = exc  # for `framex run` to report after the server gives up
            raise
        try:
            yield
        finally:
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

    for api in registry.apis:
        if api.is_http:
            add_api_route(app, registry, api)
    app.add_middleware(ContainerScope, container=container)
    app.state.framex_container = container
    return app
