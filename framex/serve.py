"""Serving a container's app over HTTP: one uvicorn process, worker processes, or Ray Serve."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from framex.container import Container, close_container
from framex.errors import FrameXError
from framex.logs import configure_logging
from framex.summary import StartupSummary, url_of

Ready = Callable[[StartupSummary], None]
"""Called once the server accepts requests (its plugins started), with what it serves."""


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_started: Callable[[_Server], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:  # the lifespan started the plugins and the sockets listen
            self._on_started(self)

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            # SIGTERM / Ctrl-C asked for a graceful stop and got it: exit normally
            # instead of re-raising the signal once the server is down.
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.clear()


def serve(container: Container) -> None:
    """Run the container's app until SIGTERM or Ctrl-C, then stop the plugins and exit.

    ``server.workers`` above 1 runs that many worker processes under a supervisor
    (:mod:`framex.workers`); ``adapter: ray`` serves on Ray Serve.
    """
    settings = container.settings()
    if settings.adapter == "ray":
        if settings.server.workers > 1:
            raise FrameXError(
                f"`server.workers: {settings.server.workers}` (`--workers`) is for the local backend; "
                "on Ray Serve, scale the HTTP ingress with `ray.ingress_options: {num_replicas: N}` instead."
            )
        logs = configure_logging(settings.log)  # the one logging set-up: FrameX, uvicorn, plugins
        from framex.adapters.ray import prepare_environment, require_ray

        prepare_environment(settings)  # before Ray is imported
        require_ray()
        from framex.adapters.ray_serve import serve_on_ray

        try:
            serve_on_ray(container)
        finally:
            logs.close()
        return
    if settings.server.workers > 1:
        from framex.workers import serve_workers

        logs = configure_logging(settings.log)
        try:
            serve_workers(settings)
        finally:
            logs.close()
        return
    serve_one(container)


def serve_one(
    container: Container,
    sockets: Sequence[socket.socket] | None = None,
    on_ready: Ready | None = None,
    log_stream: TextIO | None = None,
) -> None:
    """Serve the container's app with uvicorn in this process.

    ``sockets``: listening sockets made elsewhere (a supervisor's), else uvicorn binds
    ``server.host:server.port``. ``on_ready`` gets the start-up summary once requests
    are accepted; by default it is logged. ``log_stream`` is where the log goes
    (default: stderr).
    """
    settings = container.settings()
    logs = configure_logging(settings.log, log_stream)  # the one logging set-up: FrameX, uvicorn, plugins
    container.owns_process.override(True)
    app = container.app()
    config = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_level=settings.log.level,
        log_config=None,  # configured above, in `log.format`
        access_log=False,  # FrameX writes its own (`framex.access`: route template, request id)
        timeout_graceful_shutdown=settings.server.shutdown_timeout_s,
    )

    def started(server: _Server) -> None:
        listener = server.servers[0].sockets[0] if server.servers and server.servers[0].sockets else None
        port = listener.getsockname()[1] if listener is not None else settings.server.port
        summary = StartupSummary.of_plugins(
            settings.adapter, url_of(settings.server.host, port), container.registry().plugins.values()
        )
        if on_ready is not None:
            on_ready(summary)
        else:
            summary.log(settings.log.format)

    try:
        _Server(config, started).run(sockets=list(sockets) if sockets is not None else None)
    except SystemExit as exc:
        # uvicorn exits this way when the app's startup fails or the address is taken.
        if exc.code != STARTUP_FAILURE:
            raise
        error = container.runtime().start_error
        if isinstance(error, FrameXError):
            raise error from None
        raise FrameXError(
            f"The server could not start on {settings.server.host}:{settings.server.port} (see the log above); "
            "if the address is in use, pick another with `--port`."
        ) from None
    finally:
        close_container(container)
        logs.close()  # write what is queued before the command prints an error
