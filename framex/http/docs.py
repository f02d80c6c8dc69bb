"""The API documentation: ``/docs`` (Swagger UI) and ``/redoc`` served offline, and what the
OpenAPI document says about plugins and API keys.

The pages' scripts and styles come from the ``fastapi-offline`` package (pinned in
``pyproject.toml``) and are served by the app itself under ``/docs/assets/``; the favicon is
FrameX's own, inlined. Nothing the pages load leaves the service, so they render on
machines without internet access.

The document lists one tag per plugin, in load order, with the plugin's description,
version, author and URL (``externalDocs``), then the tag of FrameX's own routes. With
``auth.rules`` it declares the API-key scheme and marks the operations a rule protects, so
Swagger UI's "Authorize" sends the key on "Try it out".
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse

from framex.http.auth import match_rule, rule_table

if TYPE_CHECKING:
    from fastapi import FastAPI

    from framex.plugin.loader import Plugin

SERVICE_TAG = "service"
"""The tag of operations that belong to no plugin (health, version, the console's JSON)."""
SECURITY_SCHEME = "APIKey"
"""The name of the API-key scheme in ``components.securitySchemes``."""
ASSETS_PATH = "/docs/assets"
_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
}
_ASSETS_PACKAGE = "fastapi_offline"
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' blob:; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)
"""The pages' Content-Security-Policy: the browser loads nothing from elsewhere (ReDoc's footer
would fetch its vendor's logo)."""
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def favicon_data_uri() -> str:
    """FrameX's favicon as a ``data:`` URI (pages link it without another request)."""
    svg = resources.files("framex.http").joinpath("static", "favicon.svg").read_bytes()
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


def plugin_tags(plugins: Sequence[Plugin]) -> list[dict[str, Any]]:
    """OpenAPI tag objects: one per plugin, in load order, then :data:`SERVICE_TAG`."""
    tags: list[dict[str, Any]] = []
    for plugin in plugins:
        meta = plugin.metadata
        byline = f"Version {meta.version}" + (f" · by {meta.author}" if meta.author else "")
        tag: dict[str, Any] = {
            "name": plugin.name,
            "description": f"{meta.description}\n\n{byline}" if meta.description else byline,
            "x-version": meta.version,
        }
        if meta.author:
            tag["x-author"] = meta.author
        if meta.url:
            tag["externalDocs"] = {"description": f"{meta.name} documentation", "url": meta.url}
        tags.append(tag)
    if all(tag["name"] != SERVICE_TAG for tag in tags):
        tags.append({"name": SERVICE_TAG, "description": "FrameX's own routes: health, version, the console."})
    return tags


def add_security(schema: dict[str, Any], rules: Mapping[str, Sequence[str]]) -> None:
    """Declare the API-key scheme and require it on every operation an ``auth.rules`` rule covers.

    Idempotent: the document is rebuilt when APIs are added, and this runs on every build.
    """
    if not rules:
        return
    table = rule_table({path: True for path in rules})
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes[SECURITY_SCHEME] = {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "An API key of the `auth.rules` entry for the path (sent as is; `Bearer <key>` works too).",
    }
    for path, item in schema.get("paths", {}).items():
        # A template (`/api/v1/notes/{note_id}`) falls under the wildcard rules that cover its prefix.
        if match_rule(table, path) is None:
            continue
        for method, operation in item.items():
            if method in _HTTP_METHODS and isinstance(operation, dict):
                operation["security"] = [{SECURITY_SCHEME: []}]
                operation.setdefault("responses", {}).setdefault(
                    "401", {"description": "No API key, or not one this path accepts (`auth.rules`)."}
                )


def install_docs(
    app: FastAPI, title: str, plugins: Sequence[Plugin], rules: Mapping[str, Sequence[str]], openapi_url: str
) -> None:
    """Serve ``/docs``, ``/redoc`` and their assets, and describe plugins and API keys in the document.

    Build the app with ``docs_url=None, redoc_url=None``; call this after the routes that
    document themselves (the tags apply to every build of the document).
    """
    # An installed package is a folder: its files are served from there.
    assets = Path(str(resources.files(_ASSETS_PACKAGE).joinpath("static")))
    stamp = version(_ASSETS_PACKAGE)  # a new package version is a new URL: no stale cached script
    favicon = favicon_data_uri()

    def asset_url(request: Request, name: str) -> str:
        return f"{_root(request)}{ASSETS_PATH}/{name}?v={stamp}"

    async def swagger_ui(request: Request) -> HTMLResponse:
        return _offline(
            get_swagger_ui_html(
                openapi_url=_root(request) + openapi_url,
                title=f"{title} - Swagger UI",
                swagger_js_url=asset_url(request, "swagger-ui-bundle.js"),
                swagger_css_url=asset_url(request, "swagger-ui.css"),
                swagger_favicon_url=favicon,
                # No validator badge: Swagger UI would send the document to an outside service.
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    async def redoc(request: Request) -> HTMLResponse:
        return _offline(
            get_redoc_html(
                openapi_url=_root(request) + openapi_url,
                title=f"{title} - ReDoc",
                redoc_js_url=asset_url(request, "redoc.standalone.js"),
                redoc_favicon_url=favicon,
                with_google_fonts=False,
            )
        )

    async def asset(request: Request) -> FileResponse:
        name = request.path_params["name"]
        media_type = _ASSETS.get(name)
        if media_type is None:
            raise HTTPException(404, f"No documentation asset `{name}`.")
        return FileResponse(assets / name, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})

    app.add_route("/docs", swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
    app.add_route(ASSETS_PATH + "/{name}", asset, methods=["GET"], include_in_schema=False)

    app.openapi_tags = plugin_tags(plugins)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        add_security(schema, rules)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _offline(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_POLICY
    return page


def _root(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")
