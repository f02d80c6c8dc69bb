"""Serving a container's app over HTTP with uvicorn."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from framex.container import Container, close_container
from framex.errors import FrameXError
from framex.logs import configure_logging


class _Server(uvicorn.Server):
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
    """Run the container's app until SIGTERM or Ctrl-C, then stop the plugins and exit."""
    settings = container.settings()
    logs = configure_logging(settings.log)  # the one logging set-up: FrameX, uvicorn, plugins
    if settings.adapter == "ray":
        from framex.adapters.ray import prepare_environment, require_ray

        prepare_environment(settings)  # before Ray is imported
        require_ray()
        from framex.adapters.ray_serve import serve_on_ray

        serve_on_ray(container)
        return
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
    try:
        _Server(config).run()
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
