"""The console's two routes: the page at ``console.path`` and its JSON at ``<path>/api/state``.

The page is one HTML document with its style and script inlined (files beside this module),
so it needs nothing but the JSON: no CDN, no other request. It fetches the JSON every
``console.interval_s`` and draws the sparklines itself (inline SVG). Both routes are paths
like any other for ``auth.rules``; when the JSON answers 401 the page asks for a key and
sends it in the ``Authorization`` header (kept in the page's memory only).
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from framex.console.state import Console
from framex.errors import ConfigError
from framex.http.docs import SERVICE_TAG, favicon_data_uri
from framex.http.envelope import envelope_response

if TYPE_CHECKING:
    from fastapi import FastAPI

STATE_SUFFIX = "/api/state"
"""Where the JSON is, under ``console.path``."""
PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'"
)
"""The page's Content-Security-Policy: its inlined code, its favicon, and requests to the service only."""


def render_page(title: str, state_url: str, interval_s: float) -> str:
    """The console's HTML, with its style and script inlined."""
    static = resources.files("framex.console").joinpath("static")
    template = static.joinpath("console.html").read_text(encoding="utf-8")
    config = json.dumps({"stateUrl": state_url, "intervalMs": round(interval_s * 1000)})
    return (
        template.replace("{{title}}", html.escape(title))
        .replace("{{favicon}}", favicon_data_uri())
        .replace("{{style}}", static.joinpath("console.css").read_text(encoding="utf-8"))
        # `</` cannot end the script early: JSON escapes it.
        .replace("{{config}}", config.replace("</", "<\\/"))
        .replace("{{script}}", static.joinpath("console.js").read_text(encoding="utf-8"))
    )


def install_console(app: FastAPI, console: Console) -> None:
    """Add the console's routes to ``app`` (after the plugins' routes, whose paths it must not take)."""
    path = console.path
    state_path = path + STATE_SUFFIX
    for taken in (path, state_path):
        if console.registry.serves("GET", taken):
            raise ConfigError(
                f"`console.path` puts the console at `{taken}`, which a plugin API serves already. "
                "Set `console.path` to a free path, or `console.enabled: false`."
            )
    title = f"{console.settings.server.title} console"
    pages: dict[str, str] = {}

    async def console_page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = pages.get(root)
        if page is None:
            # One per mount point (a handful at most): the JSON's URL depends on it.
            page = pages[root] = render_page(title, root + state_path, console.history.interval)
        return HTMLResponse(page, headers={"Cache-Control": "no-cache", "Content-Security-Policy": PAGE_POLICY})

    async def console_state() -> Response:
        """The console's live state: the service, its backend, each plugin with its APIs and
        `@remote` functions and their figures (requests, errors, p50/p99 latency, in-flight
        requests), latency per interval for the sparklines. See docs/console.md."""
        return envelope_response(await console.state(), headers={"Cache-Control": "no-store"})

    app.add_route(path, console_page, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        state_path,
        console_state,
        methods=["GET"],
        tags=[SERVICE_TAG],
        summary="Console state",
        response_description="The envelope, its `data` the console's document.",
    )
