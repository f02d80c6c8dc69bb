"""The compiled request path: plugin routes served without FastAPI's per-request machinery.

:class:`FrameXApp` is the FastAPI application of a container. A request for a plugin
route whose signature compiled (:mod:`framex.http.compiler`) goes from its ``__call__``
straight to that route's endpoint, wrapped only by what FrameX does for every request
(request id, timing, metrics, access log, watchdog mark, tracing span). Everything else
takes FastAPI's path, and so does a request for a compiled route whenever FastAPI's
path would do more than that for it:

- a route earlier in the router (or an API found on an upstream) would serve it: the
  router's choice is worked out once per path for fixed paths, and checked per request
  against the few routes that could overlap a templated one;
- its path needs an API key it does not carry (the auth middleware answers 401), it
  carries an ``Origin`` header while CORS is on, or its body is chunked or announced over
  ``server.max_body_bytes``;
- the app was changed after it was built (middleware added) or FastAPI's own
  telemetry is on.

So the middleware those requests skip would have let them through untouched, and the
answers are the same either way (``tests/http/test_compiled_differential.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette._exception_handler import _lookup_exception_handler
from starlette._utils import get_route_path, is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Host, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from framex.http.auth import ApiKeys
from framex.http.compiler import NO_BODY, Compiled, compile_route, read_body
from framex.http.observability import ObservabilityMiddleware, StatusSend, cancelled_status
from framex.http.pipeline import Compute
from framex.http.tracing import RequestSpan
from framex.logs import REQUEST_ID

if TYPE_CHECKING:
    from framex.config import Settings
    from framex.tracing import Tracing

logger = logging.getLogger("framex.http")

ENTRY_SCOPE_KEY = "framex.compiled"
"""Where the dispatcher puts the matched route's endpoint for the wrapped inner app."""

_ORIGIN = b"origin"
_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"


class _Entry(NamedTuple):
    route: APIRoute
    compiled: Compiled


class _Templated(NamedTuple):
    entry: _Entry
    uncertain: tuple[BaseRoute, ...]
    """Routes before it in the router that may serve some of its paths: checked per request."""


class CompiledRoutes:
    """The compiled routes of one app and the front door that serves them (a container provider).

    ``add`` is called for each plugin route as the app is built; ``attach`` hands it
    the app and the per-request wrapper once the app is complete. ``fallbacks`` lists
    the routes served by FastAPI's path and why (``framex check`` prints them).
    """

    def __init__(self, settings: Settings, api_keys: ApiKeys | None = None) -> None:
        server = settings.server
        self.enabled = server.compiled_routes
        self.fallbacks: dict[str, str] = {}
        """Route (``GET /api/v1/x``) -> why it takes FastAPI's path."""
        self._compiled: dict[int, _Entry] = {}
        self._keys = api_keys
        self._cors = server.cors is not None
        self._max_body = server.max_body_bytes
        self._app: FastAPI | None = None
        self._front: ASGIApp | None = None
        self._observe: ObservabilityMiddleware | None = None
        self._tracing: Tracing | None = None
        self._middleware = 0
        self._routes_seen = -1
        self._middleware_seen = -1
        """The router's route count and the app's middleware count the tables were built for."""
        self._static: dict[str, dict[str, _Entry]] = {}
        self._templated: tuple[_Templated, ...] = ()
        self._handlers: tuple[dict[Any, Any], dict[int, Any]] | None = None

    def add(self, route: APIRoute, run: Compute, request_param: str | None) -> None:
        """Compile ``route`` (calling ``run`` with its validated values; the request goes in
        ``request_param`` too, when the handler takes it), or note why not."""
        if not self.enabled:
            return
        compiled = compile_route(route, run, request_param)
        if isinstance(compiled, str):
            for method in sorted(route.methods or ()):
                self.fallbacks[f"{method} {route.path}"] = compiled
            return
        self._compiled[id(route)] = _Entry(route, compiled)

    @property
    def count(self) -> int:
        """How many routes (one per method) compiled."""
        return len(self._compiled)

    def attach(
        self, app: FastAPI, observe: Callable[[ASGIApp], ObservabilityMiddleware], tracing: Tracing | None
    ) -> None:
        """Serve compiled routes of ``app``: each request observed by the middleware ``observe``
        makes, and traced with ``tracing`` (None: off), as the app's other requests are."""
        if not self._compiled:
            return
        self._app = app
        self._observe = observe(app)  # its begin and end, around the in-place answer
        self._front = self._observed
        self._tracing = tracing
        self._middleware = len(app.user_middleware)

    def match(self, scope: Scope) -> bool:
        """Whether this request takes the compiled path; prepares its scope when it does."""
        app = self._app
        if app is None:
            return False
        if len(app.router.routes) != self._routes_seen or len(app.user_middleware) != self._middleware_seen:
            self._build(app)
        path = get_route_path(scope) if scope.get("root_path") else scope["path"]
        method = scope["method"]
        entry: _Entry | None = None
        params: dict[str, Any] = {}
        methods = self._static.get(path)
        if methods is not None:
            entry = methods.get(method)
        if entry is None:
            # Another method of a fixed path may still be a templated route's (the router's
            # first full match wins); none of them: FastAPI's path (405, 404 or another route).
            for templated in self._templated:
                route = templated.entry.route
                found = route.path_regex.match(path)
                if found is None or method not in route.methods:  # type: ignore[operator]
                    continue
                for other in templated.uncertain:
                    if other.matches(scope)[0] is Match.FULL:
                        return False
                convertors = route.param_convertors
                params = {key: convertors[key].convert(value) for key, value in found.groupdict().items()}
                entry = templated.entry
                break
            if entry is None:
                return False
        if not self._passes(scope, path):
            return False
        route = entry.route
        scope["app"] = app
        scope["router"] = app.router
        scope["endpoint"] = route.endpoint
        scope["route"] = route
        scope["path_params"] = params
        scope[ENTRY_SCOPE_KEY] = entry
        return True

    def serve(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """Serve a request :meth:`match` accepted."""
        assert self._front is not None
        return self._front(scope, receive, send)

    def _passes(self, scope: Scope, path: str) -> bool:
        """Whether the middleware of FastAPI's path would let this request through untouched."""
        keys = self._keys
        if keys is not None and keys.verdict(scope) is False:
            return False  # the auth middleware answers it (401)
        cors, limit = self._cors, self._max_body
        if cors or limit is not None:
            for name, value in scope["headers"]:
                if name == _ORIGIN:
                    if cors:
                        return False
                elif name == _CONTENT_LENGTH:
                    if limit is not None and (not value.isdigit() or int(value) > limit):
                        return False
                elif name == _TRANSFER_ENCODING and limit is not None:
                    return False
        return True

    async def _observed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The compiled route's answer, observed as :class:`ObservabilityMiddleware` does
        around it, without wrapping ``send`` for the common ready-body responses. With
        tracing on, the request's span (or, for a request that is not recorded, its
        placeholder) is current while it is served, as the tracing middleware would make it."""
        tracing = self._tracing
        unsampled: object | None = None
        traced: RequestSpan | None = None
        if tracing is not None:
            unsampled = tracing.unsampled_request(scope)
        observe = self._observe
        assert observe is not None
        begun = observe.begin(scope)
        if tracing is not None and unsampled is None:
            traced = RequestSpan(tracing, scope)  # recorded, or continuing the caller's trace
        header = begun[4]
        status = 0
        try:
            request = Request(scope, receive)
            try:
                response = await self._response(request)
            except Exception as exc:
                response = await self._recover(request, exc, send)
            if type(response).__call__ is _BODY_RESPONSE:
                headers = response.raw_headers
                if header is not None:
                    for name, _ in headers:
                        if name == header[0]:
                            break  # an error response carries the id already
                    else:
                        headers = [*headers, header]
                status = response.status_code
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": response.body})
                if response.background is not None:
                    await response.background()
            else:
                sending = StatusSend(send, header)
                try:
                    await response(scope, receive, sending)
                finally:
                    status = sending.status
        except asyncio.CancelledError as exc:
            status = cancelled_status(exc, status)
            raise
        except BaseException as exc:
            if traced is not None:
                traced.failed(exc)
            raise
        finally:
            if traced is not None:
                traced.end(scope, status)
            observe.end(scope, receive, begun, status)
            if unsampled is not None:
                assert tracing is not None
                tracing.end_unsampled_request(unsampled)
        REQUEST_ID.reset(begun[2])

    def _response(self, request: Request) -> Awaitable[Response]:
        """The response of the matched route's endpoint: its run step itself when the request
        has no body to read and its values validate (no coroutine of FrameX's in between)."""
        compiled: Compiled = request.scope[ENTRY_SCOPE_KEY].compiled
        if not compiled.reads_body:
            values = compiled.values(request, NO_BODY)
            if values is not None:
                return _run(compiled, request, values)
        return self._validated(request, compiled)

    async def _validated(self, request: Request, compiled: Compiled) -> Response:
        body = await read_body(request, compiled.strict) if compiled.reads_body else NO_BODY
        values = compiled.values(request, body)
        if values is None:
            values = await compiled.exact(request, body)  # FastAPI's own verdict: its 422
        return await _run(compiled, request, values)

    async def _recover(self, request: Request, exc: Exception, send: Send) -> Response:
        """The answer of the app's exception handlers to ``exc``; when none answers, the
        app's 500 is sent and the error raised (what Starlette's ServerErrorMiddleware does)."""
        try:
            return await self._handled(request, exc)
        except Exception as error:
            await (await self._server_error(request, error))(request.scope, request.receive, send)
            raise

    async def _handled(self, request: Request, exc: Exception) -> Response:
        """The answer of the app's exception handlers to ``exc``, found as Starlette finds them."""
        handlers = self._handlers
        if handlers is None:
            raise exc
        by_type, by_status = handlers
        handler = by_status.get(exc.status_code) if isinstance(exc, HTTPException) else None
        if handler is None:
            handler = _lookup_exception_handler(by_type, exc)
        if handler is None:
            raise exc
        return await _call_handler(handler, request, exc)

    async def _server_error(self, request: Request, exc: Exception) -> Response:
        assert self._app is not None
        handlers = self._app.exception_handlers
        handler = handlers.get(500) or handlers.get(Exception)
        if handler is None:
            return PlainTextResponse("Internal Server Error", status_code=500)
        return await _call_handler(handler, request, exc)

    def _build(self, app: FastAPI) -> None:
        """Work out, for the router's current routes, which requests each compiled route serves."""
        routes = list(app.router.routes)
        self._routes_seen, self._middleware_seen = len(routes), len(app.user_middleware)
        self._static, self._templated = {}, ()
        # The handlers Starlette's ExceptionMiddleware would use (FastAPI's defaults included).
        handling = ExceptionMiddleware(
            app.router,
            handlers={key: value for key, value in app.exception_handlers.items() if key not in (500, Exception)},
        )
        self._handlers = (handling._exception_handlers, handling._status_handlers)
        if len(app.user_middleware) != self._middleware or _telemetry_on(app):
            return  # middleware FrameX does not know of would be skipped: FastAPI's path for all
        static: dict[str, dict[str, _Entry]] = {}
        templated: list[_Templated] = []
        # Routes seen so far: fixed paths by path, the rest (templated, mounts...) in order.
        fixed: dict[str, list[BaseRoute]] = {}
        others: list[BaseRoute] = []

        def seen(route: BaseRoute) -> None:
            if isinstance(route, Route) and not route.param_convertors:
                fixed.setdefault(route.path, []).append(route)
            else:
                others.append(route)

        # The dispatcher of APIs found upstream answers its routes before the router does.
        for route in routes:
            if type(route) is Route:
                seen(route)
        for route in routes:
            entry = self._compiled.get(id(route))
            if entry is not None and entry.route is route:
                if not route.param_convertors:
                    candidates = [*fixed.get(route.path, ()), *others]
                    for method in route.methods or ():
                        probe = {"type": "http", "path": route.path, "root_path": "", "method": method, "headers": []}
                        if not any(_serves(other, probe) for other in candidates):
                            static.setdefault(route.path, {})[method] = entry
                else:
                    before = [other for group in fixed.values() for other in group] + others
                    uncertain = tuple(other for other in before if _may_overlap(other, route, self._compiled))
                    templated.append(_Templated(entry, uncertain))
            seen(route)
        self._static, self._templated = static, tuple(templated)


def _serves(route: BaseRoute, scope: Scope) -> bool:
    if isinstance(route, Host):
        return True  # depends on the Host header: never assume it does not
    try:
        return route.matches(dict(scope))[0] is Match.FULL
    except Exception:
        return True


def _may_overlap(other: BaseRoute, route: APIRoute, compiled: dict[int, _Entry]) -> bool:
    """Whether ``other``, before ``route`` in the router, may serve some of ``route``'s paths."""
    entry = compiled.get(id(other))
    if entry is not None and entry.route is other and entry.route.param_convertors:
        return False  # a compiled templated route: the dispatcher tries it first anyway
    if isinstance(other, Route) and not other.param_convertors:
        return route.path_regex.match(other.path) is not None
    return True


def _run(compiled: Compiled, request: Request, values: dict[str, Any]) -> Awaitable[Response]:
    """The route's run step with its values (and the request, when the handler takes it)."""
    if compiled.request_param is not None:
        values[compiled.request_param] = request
    return compiled.run(request, values)


_BODY_RESPONSE = Response.__call__
"""How responses with a ready body are sent (the envelope's, JSON, text): start, then body."""


async def _call_handler(handler: Callable[..., Any], request: Request, exc: Exception) -> Response:
    if is_async_callable(handler):
        response = await handler(request, exc)
    else:
        response = await run_in_threadpool(handler, request, exc)
    assert isinstance(response, Response)
    return response


def _telemetry_on(app: FastAPI) -> bool:
    telemetry = getattr(app, "_native_telemetry", None)
    try:
        return telemetry is not None and bool(telemetry.enabled())
    except Exception:
        return True


class FrameXApp(FastAPI):
    """The FastAPI application of a container: compiled plugin routes are served first."""

    framex_routes: CompiledRoutes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        routes = self.framex_routes
        if routes is not None and scope["type"] == "http":
            if self.root_path:
                scope["root_path"] = self.root_path
            if routes.match(scope):
                await routes.serve(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
