"""Cross-origin requests from browsers (``server.cors``), with Starlette's CORSMiddleware."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.middleware.cors import CORSMiddleware

if TYPE_CHECKING:
    from fastapi import FastAPI

    from framex.config import CorsSettings


def install_cors(app: FastAPI, settings: CorsSettings | None) -> None:
    """Answer preflights and label responses for the allowed origins; nothing when off.

    Install it after the auth middleware so it wraps it: preflights carry no key, and a
    401 needs the CORS headers for the page's script to read it.
    """
    if settings is None:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.allow_origins,
        allow_methods=settings.allow_methods,
        allow_headers=settings.allow_headers,
        allow_credentials=settings.allow_credentials,
        expose_headers=settings.expose_headers,
        max_age=settings.max_age,
    )
