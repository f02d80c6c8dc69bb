"""The span of each HTTP request: one pure ASGI middleware, installed only when tracing is on.

It sits inside the observability middleware (which gives the request its id) and wraps
everything else, auth and CORS answers included. An incoming W3C ``traceparent``
makes the request's span a child of the caller's; the span is current while the
request is served, so plugin calls, ``.remote()`` work and upstream requests made for it
join its trace. It ends when the response has been sent, for a stream when the stream
ends. A 5xx marks it failed with the exception's type when there was one (never its
message).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from framex.http.errors import ERROR_TYPE_SCOPE_KEY, REQUEST_ID_SCOPE_KEY
from framex.http.metrics import UNMATCHED
from framex.tracing import SAMPLED_SCOPE_KEY

if TYPE_CHECKING:
    from fastapi import FastAPI

    from framex.tracing import Tracing


def route_template(scope: Scope) -> str:
    """The path template of the route that served the request (relative to the app's root)."""
    template = getattr(scope.get("route"), "path_format", None)
    return template if isinstance(template, str) else UNMATCHED


class RequestSpan:
    """The span of one HTTP request, current from its start until :meth:`end`.

    Its parent is the caller's ``traceparent`` when the request has one; otherwise it starts
    a trace, recorded or not as ``scope[SAMPLED_SCOPE_KEY]`` says when the decision was
    drawn already. The tracing middleware and the compiled path both make it.
    """

    __slots__ = ("method", "span", "token", "tracing")

    def __init__(self, tracing: Tracing, scope: Scope) -> None:
        self.tracing = tracing
        method: str = scope["method"]
        self.method = method
        attributes: dict[str, Any] = {"http.request.method": method, "url.path": scope["path"]}
        rid = scope.get(REQUEST_ID_SCOPE_KEY)
        if rid is not None:
            attributes["framex.request_id"] = rid
        parent = tracing.extract_headers(scope["headers"])
        self.span = tracing.start(method, attributes, tracing.kinds.SERVER, parent, scope.pop(SAMPLED_SCOPE_KEY, None))
        self.token = tracing.attach(self.span)

    def failed(self, exc: BaseException) -> None:
        """Mark the span failed with ``exc``'s type, unless the client left (a cancellation)."""
        if not isinstance(exc, asyncio.CancelledError):
            self.tracing.fail(self.span, exc)

    def end(self, scope: Scope, status: int) -> None:
        """End the span with the route's template and the response's ``status`` (0: none sent)."""
        span = self.span
        try:
            if span.is_recording():  # an unsampled request's span keeps nothing
                template = route_template(scope)
                span.update_name(f"{self.method} {template}")
                attributes: dict[str, Any] = {"http.route": template}
                if status:
                    attributes["http.response.status_code"] = status
                span.set_attributes(attributes)
                if status >= 500:
                    self.tracing.fail(span, scope.get(ERROR_TYPE_SCOPE_KEY) or str(status))
            span.end()
        finally:
            self.tracing.detach(self.token)


class TracingMiddleware:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, *, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        traced = RequestSpan(self.tracing, scope)
        status = 0

        def send_status(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        try:
            await self.app(scope, receive, send_status)
        except BaseException as exc:
            traced.failed(exc)
            raise
        finally:
            traced.end(scope, status)


def install_tracing(app: FastAPI, tracing: Tracing | None) -> None:
    """Add the middleware when tracing is on; call it just before the observability middleware."""
    if tracing is not None:
        app.add_middleware(TracingMiddleware, tracing=tracing)
