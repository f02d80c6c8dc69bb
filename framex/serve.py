"""Serving a container's app over HTTP."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from framex.container import Container


def serve(container: Container) -> None:
    """Run the container's app with uvicorn until interrupted."""
    from framex.container import close_container

    settings = container.settings()
    if settings.adapter == "ray":
        from framex.adapters.ray_serve import serve_on_ray

        serve_on_ray(container)
        return
    logging.basicConfig(level=settings.server.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    app = container.app()
    try:
        uvicorn.run(
            app,
            host=settings.server.host,
            port=settings.server.port,
            log_level=settings.server.log_level,
            timeout_graceful_shutdown=30,
        )
    finally:
        close_container(container)
