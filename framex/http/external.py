"""Routes of APIs served elsewhere (found by a plugin when it starts, e.g. on upstream services):
mounted as they are found, and documented with the upstream's own operations and schemas."""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any

from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from framex.http.auth import route_path

if TYPE_CHECKING:
    from fastapi import FastAPI

    from framex.plugin.loader import ExternalApi
    from framex.plugin.registry import PluginRegistry

_REF = "#/components/schemas/"


class ExternalRoutes:
    """Dispatches requests for external APIs before FastAPI's router (and its middleware)
    sees them: a dict lookup for fixed paths, and the templated ones checked only for
    paths that start with their fixed part. Anything else goes on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.fixed: dict[tuple[str, str], Route] = {}
        self.templated: list[tuple[str, Route]] = []

    def add(self, route: Route) -> None:
        methods = route.methods or set()
        if "{" not in route.path:
            for method in methods:
                self.fixed[(method, route.path)] = route
        else:
            self.templated.append((route.path.split("{", 1)[0], route))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (self.fixed or self.templated):
            path = route_path(scope)
            route = self.fixed.get((scope["method"], path))
            if route is not None:
                scope["route"] = route
                scope["path_params"] = {}
                await route.app(scope, receive, send)
                return
            for prefix, candidate in self.templated:
                if path.startswith(prefix):
                    match, child = candidate.matches(scope)
                    if match is Match.FULL:
                        scope.update(child)
                        await candidate.app(scope, receive, send)
                        return
        await self.app(scope, receive, send)


def install_external_routes(app: FastAPI, registry: PluginRegistry) -> None:
    """Serve every external API of ``registry`` (now and when added later) and document it.

    Requests for them take the :class:`ExternalRoutes` shortcut; the routes are in the
    router too, where a request with another method gets its 405. Call it before adding
    the middleware that must see those requests (auth, CORS, observability).
    """
    shortcut: list[ExternalRoutes] = []
    routes: dict[ExternalApi, list[Route]] = {}

    def _routes(api: ExternalApi) -> list[Route]:
        if api not in routes:
            assert api.path is not None
            routes[api] = [Route(api.path, api.route, methods=[m], name=api.name) for m in api.spec.methods]
        return routes[api]

    def dispatcher(inner: ASGIApp) -> ExternalRoutes:
        found = ExternalRoutes(inner)
        for api in registry.external_apis:
            for route in _routes(api):
                found.add(route)
        shortcut.append(found)
        return found

    def mount(api: ExternalApi) -> None:
        for route in _routes(api):
            app.router.routes.append(route)
            for found in shortcut:  # the middleware stack is built at the first request
                found.add(route)
        app.openapi_schema = None  # documented on the next request for the document

    app.add_middleware(dispatcher)
    registry.on_external_api(mount)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for api in registry.external_apis:
            add_operation(schema, api)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def add_operation(schema: dict[str, Any], api: ExternalApi) -> None:
    """Put ``api``'s operation, and the component schemas it refers to, into ``schema``.

    A component whose name is taken by a different schema gets a suffix naming its
    source, and the operation's references follow it.
    """
    assert api.path is not None
    known = schema.setdefault("components", {}).setdefault("schemas", {})
    names: dict[str, str] = {}
    for name in _closure(api.operation, api.schemas):
        mine = api.schemas[name]
        new = name
        if name in known and known[name] != mine:
            new = f"{name}__{re.sub(r'[^A-Za-z0-9]+', '_', api.source).strip('_')}"
        names[name] = new
    for name, new in names.items():
        known.setdefault(new, _renamed(api.schemas[name], names))
    operation = _renamed(api.operation, names)
    operation.setdefault("tags", [api.plugin])  # listed under the plugin that found it
    for method in api.spec.methods:
        schema.setdefault("paths", {}).setdefault(api.path, {})[method.lower()] = operation


def _closure(root: Any, schemas: dict[str, Any]) -> list[str]:
    """Names of the component schemas ``root`` refers to, directly or not."""
    seen: list[str] = []
    todo = [root]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(_REF):
                name = ref[len(_REF) :]
                if name in schemas and name not in seen:
                    seen.append(name)
                    todo.append(schemas[name])
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return seen


def _renamed(node: Any, names: dict[str, str]) -> Any:
    """A deep copy of ``node`` with its ``$ref``s to renamed schemas rewritten."""
    copied = copy.deepcopy(node)
    todo = [copied]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(_REF) and ref[len(_REF) :] in names:
                item["$ref"] = _REF + names[ref[len(_REF) :]]
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return copied
