"""Turning plugin APIs into FastAPI routes."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from framex.container import Container, activate, deactivate
from framex.errors import PluginDefinitionError
from framex.http.cache import cached_endpoint
from framex.http.envelope import ValidationErrorEnvelope, envelope_model, result_response
from framex.http.errors import internal_error, request_id, request_id_headers
from framex.http.streaming import SSE_MEDIA_TYPE, sse_stream
from framex.plugin.loader import PluginApi
from framex.plugin.registry import PluginRegistry

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


def add_api_route(app: FastAPI, container: Container, api: PluginApi) -> None:
    """Serve ``api`` at its path, with its parameters and body model in the OpenAPI document."""
    assert api.path is not None
    # FastAPI hands the request to one parameter only: reuse the handler's own, if any.
    own = next((p.name for p in api.signature.parameters.values() if p.annotation is Request), None)
    endpoint = _endpoint(container, api, own)
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
    except Exception as exc:
        raise PluginDefinitionError(f"Cannot serve `{api.name}` at `{api.path}`: {exc}") from exc


def _endpoint(container: Container, api: PluginApi, own_request: str | None = None) -> Callable[..., Any]:
    # The endpoint makes its container the active one (so `get_container()`, `@remote`
    # and `call_plugin_api` in plugin code find it, even with several apps in a process)
    # and starts the plugins on first use when no lifespan did (a mounted app).
    if api.spec.options.get("cache") is not None:
        # Decided once, here: routes without cache options keep the endpoints below untouched.
        return cached_endpoint(container, api, own_request or _REQUEST_PARAM, keep=own_request is not None)
    registry: PluginRegistry = container.registry()
    invoke = registry.invoke
    label = api.label

    if api.spec.stream:

        async def stream_endpoint(**kwargs: Any) -> Response:
            request: Request = kwargs[own_request] if own_request else kwargs.pop(_REQUEST_PARAM)
            token = activate(container)
            try:
                if not registry.started:
                    await registry.start()
                items = await invoke(api, kwargs)
            except HTTPException:
                raise
            except Exception as exc:
                return internal_error(request, label, exc)
            finally:
                deactivate(token)
            rid = request_id(request)
            return StreamingResponse(
                sse_stream(items, label, rid, container),
                media_type=SSE_MEDIA_TYPE,
                headers=request_id_headers(request, rid),
            )

        return stream_endpoint

    raw = api.spec.raw_response
    status = int(api.spec.options.get("status_code", 200))

    async def endpoint(**kwargs: Any) -> Response:
        request: Request = kwargs[own_request] if own_request else kwargs.pop(_REQUEST_PARAM)
        token = activate(container)
        try:
            if not registry.started:
                await registry.start()
            result = await invoke(api, kwargs)
        except HTTPException:
            raise
        except Exception as exc:
            return internal_error(request, label, exc)
        finally:
            deactivate(token)
        try:
            return result_response(result, raw, status)
        except Exception as exc:
            return internal_error(request, f"{label} (serializing its result)", exc)

    return endpoint
