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


class TracingMiddleware:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, *, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing
        self.server = tracing.kinds.SERVER

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracing = self.tracing
        method: str = scope["method"]
        attributes: dict[str, Any] = {"http.request.method": method, "url.path": scope["path"]}
        rid = scope.get(REQUEST_ID_SCOPE_KEY)
        if rid is not None:
            attributes["framex.request_id"] = rid
        parent = tracing.extract_headers(scope["headers"])
        span = tracing.start(f"{method}", attributes, self.server, parent, scope.pop(SAMPLED_SCOPE_KEY, None))
        token = tracing.attach(span)
        status = 0

        def send_status(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        try:
            await self.app(scope, receive, send_status)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):  # the client left: not the service's failure
                tracing.fail(span, exc)
            raise
        finally:
            if span.is_recording():  # an unsampled request's span keeps nothing
                template = route_template(scope)
                span.update_name(f"{method} {template}")
                span.set_attributes(
                    {"http.route": template, "http.response.status_code": status}
                    if status
                    else {"http.route": template}
                )
                if status >= 500:
                    tracing.fail(span, scope.get(ERROR_TYPE_SCOPE_KEY) or str(status))
            span.end()
            tracing.detach(token)


def install_tracing(app: FastAPI, tracing: Tracing | None) -> None:
    """Add the middleware when tracing is on; call it just before the observability middleware."""
    if tracing is not None:
        app.add_middleware(TracingMiddleware, tracing=tracing)
