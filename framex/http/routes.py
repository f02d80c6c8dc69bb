"""Turning plugin APIs into FastAPI routes: the documented signature, the route options,
and the endpoint from the request pipeline."""

from __future__ import annotations

import inspect
import logging
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import StreamingResponse

from framex.errors import PluginDefinitionError
from framex.http.compiled import CompiledRoutes
from framex.http.envelope import ValidationErrorEnvelope, envelope_model
from framex.http.pipeline import Layer, Pipeline
from framex.http.streaming import SSE_MEDIA_TYPE
from framex.plugin.loader import PluginApi

logger = logging.getLogger("framex.http")

_ROUTE_OPTIONS = frozenset(
    {
        "summary",
        "description",
        "deprecated",
        "operation_id",
        "include_in_schema",
        "response_description",
        "status_code",
        "openapi_extra",
        "responses",
    }
)
_FRAMEX_OPTIONS = frozenset({"cache"})
"""Options FrameX handles itself; they are not passed to FastAPI."""
_REQUEST_PARAM = "_framex_request"


def add_api_route(
    app: FastAPI, pipeline: Pipeline, api: PluginApi, layer: Layer | None = None, compiled: CompiledRoutes | None = None
) -> None:
    """Serve ``api`` at its path, with its parameters and body model in the OpenAPI document.

    ``layer`` wraps its request pipeline (the cache's, for routes with cache options);
    ``compiled`` gets each route to compile.
    """
    assert api.path is not None
    # FastAPI hands the request to one parameter only: reuse the handler's own, if any.
    own = next((p.name for p in api.signature.parameters.values() if p.annotation is Request), None)
    run = pipeline.run(api, layer)
    endpoint = pipeline.endpoint(run, own or _REQUEST_PARAM, keep=own is not None)
    params = list(api.signature.parameters.values())
    if own is None:
        params.append(inspect.Parameter(_REQUEST_PARAM, inspect.Parameter.KEYWORD_ONLY, annotation=Request))
    endpoint.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    endpoint.__name__ = api.name.replace(".", "_")
    endpoint.__doc__ = inspect.getdoc(api.func)

    spec = api.spec
    route_options = {k: v for k, v in spec.options.items() if k in _ROUTE_OPTIONS}
    ignored = sorted(set(spec.options) - _ROUTE_OPTIONS - _FRAMEX_OPTIONS)
    if ignored:
        logger.warning(
            "`%s`: @on_request option(s) %s are not used by this FrameX version; accepted: %s",
            api.name,
            ", ".join(ignored),
            ", ".join(sorted(_ROUTE_OPTIONS | _FRAMEX_OPTIONS)),
        )
    kwargs: dict[str, Any] = {
        "tags": list(spec.tags) if spec.tags is not None else [api.plugin],
        "name": api.name,
        **route_options,
    }
    if spec.stream:
        kwargs["response_class"] = StreamingResponse
        kwargs.setdefault("responses", {200: {"content": {SSE_MEDIA_TYPE: {}}, "description": "Server-Sent Events"}})
    elif spec.raw_response:
        kwargs["response_model"] = None if api.return_type is Any else api.return_type
    else:
        # Documentation only: endpoints return ready responses, so FastAPI never re-validates.
        kwargs["response_model"] = envelope_model(api.return_type)
    if any(p.annotation is not Request for p in api.signature.parameters.values()):
        # FastAPI would document its own 422 body; FrameX answers with the envelope.
        responses = dict(kwargs.get("responses") or {})
        if not any(code in responses for code in (422, "422", "4XX", "default")):
            responses[422] = {"model": ValidationErrorEnvelope, "description": "Validation Error"}
        kwargs["responses"] = responses
    try:
        # One route per method, so each operation gets its own OpenAPI id.
        for method in spec.methods:
            app.add_api_route(api.path, endpoint, methods=[method], **kwargs)
            route = app.router.routes[-1]
            if compiled is not None and isinstance(route, APIRoute):
                compiled.add(route, run, own)
    except Exception as exc:
        raise PluginDefinitionError(f"Cannot serve `{api.name}` at `{api.path}`: {exc}") from exc
