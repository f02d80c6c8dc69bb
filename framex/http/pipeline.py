"""The one way a request to a plugin API goes: from the endpoint FastAPI calls to the response.

Every plugin route, plain, streaming or cached, runs :meth:`Pipeline.run` (from FastAPI's
endpoint or from its compiled one): it marks
the request with its API (for the loop watchdog), makes the app's container the active
one, starts the plugins if nothing did yet (an app mounted without its lifespan), calls
the handler as its plugin, and turns the result into the envelope, an SSE stream or a
raw answer. Features wrap this path as layers (:data:`Layer`: the cache is one); they
never copy it. Errors end in :func:`failure`: an ``HTTPException`` goes on to FastAPI's
handlers, anything else is logged and answered 500 without its text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from framex.context import activate, current_plugin, deactivate
from framex.http.envelope import result_response
from framex.http.errors import internal_error, request_id, request_id_headers
from framex.http.marks import API_SCOPE_KEY, RouteMarks
from framex.http.streaming import SSE_MEDIA_TYPE, sse_stream

if TYPE_CHECKING:
    from framex.container import Container
    from framex.plugin.loader import PluginApi
    from framex.plugin.runtime import PluginRuntime

Compute = Callable[[Request, dict[str, Any]], Awaitable[Response]]
"""Runs the API for one request and returns its response; raises what the handler raised."""
Layer = Callable[["PluginApi", Compute], Compute]
"""Wraps the compute step of one API (called once per route, when the app is built)."""


class UnserializableError(Exception):
    """The handler's result could not be turned into a response (the cause is the real error)."""


class Pipeline:
    """The request path of one app's plugin routes."""

    def __init__(self, container: Container, runtime: PluginRuntime, marks: RouteMarks | None = None) -> None:
        self.container = container
        self.runtime = runtime
        self.marks = marks

    def compute(self, api: PluginApi, answering: bool = False) -> Compute:
        """The step that runs ``api`` for one request and makes its response.

        ``answering``: the whole path of :meth:`run` in this one step (the request marked
        with its API, errors answered by :func:`failure`), for APIs without a layer: a
        coroutine fewer per request.
        """
        container, runtime, marks = self.container, self.runtime, self.marks
        invoke, coroutine_plan = runtime.invoke, runtime.coroutine_plan
        label, name = api.label, api.name
        stream = api.spec.stream
        raw = api.spec.raw_response
        status = int(api.spec.options.get("status_code", 200))

        async def compute(request: Request, kwargs: dict[str, Any]) -> Response:
            if answering:
                request.scope[API_SCOPE_KEY] = name  # names the API in the watchdog's warnings
            # Plugin code (`.remote()`, `call_plugin_api`) finds this app's container, even
            # with several apps in one process.
            token = activate(container)
            try:
                if not runtime.started:
                    await runtime.start()
                plan = coroutine_plan(api)
                if plan is None:
                    result = await invoke(api, kwargs)
                else:
                    as_plugin = current_plugin.set(plan.plugin)
                    try:
                        result = await plan.handler(**kwargs)
                    finally:
                        current_plugin.reset(as_plugin)
            except Exception as exc:
                if answering:
                    return failure(request, label, exc)
                raise
            finally:
                deactivate(token)
            if stream:
                rid = request_id(request)
                return StreamingResponse(
                    sse_stream(result, label, rid, container, marks),
                    media_type=SSE_MEDIA_TYPE,
                    headers=request_id_headers(request, rid),
                )
            try:
                return result_response(result, raw, status)
            except Exception as exc:
                if not answering:
                    raise UnserializableError from exc
                error = UnserializableError()
                error.__cause__ = exc
                return failure(request, label, error)

        return compute

    def run(self, api: PluginApi, layer: Layer | None = None) -> Compute:
        """The whole request path of ``api`` for one request, with ``layer`` around its
        compute step: the request marked with its API, and errors answered (:func:`failure`)."""
        if layer is None:
            return self.compute(api, answering=True)
        compute = layer(api, self.compute(api))
        label, name = api.label, api.name

        async def run(request: Request, kwargs: dict[str, Any]) -> Response:
            request.scope[API_SCOPE_KEY] = name  # names the API in the watchdog's warnings
            try:
                return await compute(request, kwargs)
            except Exception as exc:
                return failure(request, label, exc)

        return run

    @staticmethod
    def endpoint(run: Compute, request_param: str, keep: bool) -> Callable[..., Awaitable[Response]]:
        """The endpoint FastAPI calls, running ``run`` (from :meth:`run`).

        ``request_param`` is the keyword the request arrives in; ``keep`` leaves it in
        place when it is the handler's own parameter.
        """

        async def endpoint(**kwargs: Any) -> Response:
            request: Request = kwargs[request_param] if keep else kwargs.pop(request_param)
            return await run(request, kwargs)

        return endpoint


def failure(request: Request, label: str, exc: Exception, headers: dict[str, str] | None = None) -> Response:
    """The answer to an API that raised ``exc``; ``headers`` are added to it.

    Raises an ``HTTPException`` again (a new one when headers are added: the one raised
    may be shared by several requests), for FastAPI's handlers to answer.
    """
    if isinstance(exc, HTTPException):
        if headers:
            raise HTTPException(exc.status_code, exc.detail, {**(exc.headers or {}), **headers}) from exc
        raise exc
    if isinstance(exc, UnserializableError) and isinstance(exc.__cause__, Exception):
        response = internal_error(request, f"{label} (serializing its result)", exc.__cause__)
    else:
        response = internal_error(request, label, exc)
    if headers:
        response.headers.update(headers)
    return response
