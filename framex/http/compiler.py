"""Compiling a plugin route into one ASGI endpoint: its parameters and body read by
code made for that route, with the validators FastAPI built for it.

FastAPI reads a request generically: it wraps the scope in helper objects, walks the
route's dependency tree and validates each parameter through several layers. A
compiled route does, per request, only what its own signature needs: it parses the
query string once, reads the headers, cookies and body it takes, and calls each
parameter's validator directly. The values it hands to the handler are those FastAPI
would hand it (the same aliases, defaults, last-value-wins for repeated scalar keys,
``strict_content_type`` for bodies).

Answers other than success come from FastAPI's own code: when anything fails to
validate, the request's errors are computed again with FastAPI's functions over
Starlette's request objects, so every 422 lists what FastAPI's would, in its order.
A route whose signature this compiler does not handle (dependencies, forms and files,
parameter models, ...) is not compiled; :func:`compile_route` says why, and FastAPI's
path serves it.
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Awaitable, Callable
from copy import deepcopy
from enum import Enum
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Scope

Endpoint = Callable[[Request, dict[str, Any]], Awaitable[Response]]
"""Runs an API for one request, with its validated values (the request pipeline's ``run``)."""

NO_BODY: Any = object()
"""The body of a request that has none (or of a route that reads none)."""
_MISSING = NO_BODY  # a value the request does not give; a missing body is one


class Compiled(NamedTuple):
    """One route, compiled: what the dispatcher does per request, in this order."""

    run: Endpoint
    request_param: str | None
    """The handler's own ``Request`` parameter, if it takes one."""
    reads_body: bool
    strict: bool
    """FastAPI's ``strict_content_type``: a body without a JSON ``Content-Type`` is not JSON."""
    values: Callable[[Request, Any], dict[str, Any] | None]
    """The handler's values from the request and its body (:func:`read_body`); None when
    something does not validate, then ``exact`` says what."""
    exact: Callable[[Request, Any], Awaitable[dict[str, Any]]]
    """FastAPI's own reading of the request: its values, or its ``RequestValidationError``."""


_IMMUTABLE = (type(None), bool, int, float, str, bytes, frozenset, Enum)


class _Param(NamedTuple):
    """One parameter: path, query, header, cookie or body."""

    name: str
    keys: tuple[str, ...]
    """The request keys it may come under, in FastAPI's order of preference."""
    sequence: bool
    required: bool
    default: Any
    copy_default: bool
    validate_default: bool
    validate: Callable[..., Any]


def _unsupported(route: APIRoute) -> str | None:
    """Why ``route``'s signature is left to FastAPI, or None when it compiles."""
    from fastapi import params
    from fastapi.dependencies.utils import _get_param_model, _is_json_field

    dependant = route.dependant
    if dependant.dependencies:
        return "it uses Depends()"
    for kind in ("http_connection", "websocket", "background_tasks", "response", "security_scopes"):
        if getattr(dependant, f"{kind}_param_name", None):
            return f"it takes a {kind.replace('_', ' ')} parameter"
    fields = [*dependant.path_params, *dependant.query_params, *dependant.header_params, *dependant.cookie_params]
    for field in fields:
        if _get_param_model(field) is not None:
            return f"`{field.name}` takes its parameters as one model"
        if _is_json_field(field):
            return f"`{field.name}` is a Json[...] parameter"
    for field in dependant.body_params:
        if isinstance(field.field_info, params.Form):
            return f"`{field.name}` is a form field or a file"
        if _is_json_field(field):
            return f"`{field.name}` is a Json[...] parameter"
    for field in dependant.path_params:
        if _sequence(field):
            return f"path parameter `{field.name}` is a sequence"
    return None


def _sequence(field: Any) -> bool:
    from fastapi._compat.shared import field_annotation_is_sequence

    return bool(field_annotation_is_sequence(field.field_info.annotation))


def _defaults(field: Any) -> tuple[bool, Any, bool, bool]:
    required = bool(field.field_info.is_required())
    default = None if required else field.default
    copy = not isinstance(default, _IMMUTABLE) and not (
        isinstance(default, tuple) and all(isinstance(item, _IMMUTABLE) for item in default)
    )
    return required, default, copy, bool(field.field_info.validate_default)


def _param(field: Any, body: bool = False) -> _Param:
    """``field`` as the compiled code reads it; a body field is looked up by its validation
    alias (FastAPI's ``request_body_to_args``), the others by their request key."""
    from fastapi.dependencies.utils import _get_param_aliases

    keys = tuple(alias if body else key for alias, key in _get_param_aliases(field))
    required, default, copy, validate_default = _defaults(field)
    sequence = not body and _sequence(field)
    validate = field._type_adapter.validator.validate_python
    return _Param(field.name, keys, sequence, required, default, copy, validate_default, validate)


class _InvalidError(Exception):
    """A parameter did not validate on the compiled path; FastAPI's functions say why."""


def _value(param: _Param, value: Any, out: dict[str, Any]) -> None:
    """What FastAPI's ``_validate_value_with_model_field`` does, raising instead of listing errors."""
    if value is _MISSING:
        if param.required:
            raise _InvalidError
        value = deepcopy(param.default) if param.copy_default else param.default
        if not param.validate_default:
            out[param.name] = value
            return
    try:
        out[param.name] = param.validate(value, from_attributes=True)
    except ValueError as exc:  # pydantic_core.ValidationError
        raise _InvalidError from exc


def _pick(param: _Param, received: dict[str, Any], lists: dict[str, list[Any]] | None) -> Any:
    keys = param.keys
    key = keys[0]
    if len(keys) > 1:
        key = next((k for k in keys if k in received), key)
    if param.sequence and lists is not None:
        values = lists.get(key)
        return values if values else _MISSING
    value = received.get(key, _MISSING)
    if param.sequence and value is not _MISSING and len(value) == 0:
        return _MISSING
    return value


def parse_query(raw: bytes) -> list[tuple[str, str]]:
    """The query string's pairs, as Starlette's ``QueryParams`` reads them."""
    text = raw.decode("latin-1")
    if "%" in text or "+" in text:
        return parse_qsl(text, keep_blank_values=True)
    pairs = []
    for part in text.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((name, value))
    return pairs


def _grouped(pairs: list[tuple[str, str]]) -> dict[str, list[Any]]:
    lists: dict[str, list[Any]] = {}
    for name, value in pairs:
        found = lists.get(name)
        if found is None:
            lists[name] = [value]
        else:
            found.append(value)
    return lists


def _json_content_type(value: str | None, strict: bool) -> bool:
    """Whether FastAPI reads a body of this ``Content-Type`` as JSON."""
    if not value:
        return not strict
    if value == "application/json":
        return True
    message = email.message.Message()
    message["content-type"] = value
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


async def _receive_body(request: Request) -> bytes:
    """The whole body, as ``Request.body()`` reads it (and keeps it for the handler)."""
    receive = request.receive
    chunks: list[bytes] = []
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        elif kind == "http.disconnect":
            request._is_disconnected = True
            raise ClientDisconnect
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    request._body = body
    request._stream_consumed = True
    return body


def _content_type(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return str(value.decode("latin-1"))
    return None


async def read_body(request: Request, strict: bool) -> Any:
    """The body as FastAPI's request handler reads it (JSON, raw bytes, or :data:`NO_BODY`);
    ``RequestValidationError`` or ``HTTPException`` (400) as FastAPI raises them."""
    try:
        raw = await _receive_body(request)
        if not raw:
            return NO_BODY
        if _json_content_type(_content_type(request.scope), strict):
            return json.loads(raw)
        return raw
    except json.JSONDecodeError as exc:
        error = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {}}
        raise RequestValidationError([{**error, "ctx": {"error": exc.msg}}], body=exc.doc) from exc
    except HTTPException:
        raise
    except Exception as exc:
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from exc


async def _errors(route: APIRoute, request: Request, body: Any) -> tuple[dict[str, Any], list[Any]]:
    """The values and errors FastAPI's dependency solving finds for this request."""
    from fastapi.dependencies.utils import request_body_to_args, request_params_to_args
    from pydantic_core import PydanticUndefined

    dependant = route.dependant
    values: dict[str, Any] = {}
    errors: list[Any] = []
    for fields, received in (
        (dependant.path_params, request.path_params),
        (dependant.query_params, request.query_params),
        (dependant.header_params, request.headers),
        (dependant.cookie_params, request.cookies),
    ):
        found, wrong = request_params_to_args(fields, received)
        values.update(found)
        errors += wrong
    if dependant.body_params:
        found, wrong = await request_body_to_args(
            body_fields=dependant.body_params,
            received_body=PydanticUndefined if body is NO_BODY else body,
            embed_body_fields=route._embed_body_fields,
        )
        values.update(found)
        errors += wrong
    return values, errors


def compile_route(route: APIRoute, run: Endpoint, request_param: str | None) -> Compiled | str:
    """``route`` compiled, calling ``run`` with the request and its validated values (the
    request among them as ``request_param`` when given); or why it is not compiled."""
    try:
        reason = _unsupported(route)
        if reason is not None:
            return reason
        return _compile(route, run, request_param)
    except Exception as exc:  # a FastAPI release whose internals moved: its own path still works
        return f"the compiler cannot read it ({type(exc).__name__}: {exc})"


def _compile(route: APIRoute, run: Endpoint, request_param: str | None) -> Compiled:
    from fastapi.dependencies.utils import _should_embed_body_fields

    dependant = route.dependant
    path = tuple(_param(f) for f in dependant.path_params)
    query = tuple(_param(f) for f in dependant.query_params)
    query_lists = any(p.sequence for p in query)
    headers = tuple(_param(f) for f in dependant.header_params)
    header_keys = frozenset(key.lower() for p in headers for key in p.keys)
    cookies = tuple(_param(f) for f in dependant.cookie_params)
    body_fields = dependant.body_params
    bodies = tuple(_param(f, body=True) for f in body_fields)
    whole_body = len(body_fields) == 1 and not route._embed_body_fields and not _should_embed_body_fields(body_fields)
    strict = bool(getattr(route, "strict_content_type", True))

    def values(request: Request, body: Any) -> dict[str, Any] | None:
        """The validated values, or None when something does not validate."""
        try:
            scope = request.scope
            found: dict[str, Any] = {}
            if path:
                received = scope["path_params"]
                for param in path:
                    _value(param, _pick(param, received, None), found)
            if query:
                pairs = parse_query(scope["query_string"])
                received = dict(pairs)
                lists = _grouped(pairs) if query_lists else None
                for param in query:
                    _value(param, _pick(param, received, lists), found)
            if headers:
                # Starlette's Headers: the first value of a name; lists take them all.
                first: dict[str, str] = {}
                all_values: dict[str, list[Any]] = {}
                for raw_name, raw_value in scope["headers"]:
                    name = raw_name.decode("latin-1")
                    if name in header_keys:
                        value = raw_value.decode("latin-1")
                        first.setdefault(name, value)
                        all_values.setdefault(name, []).append(value)
                for param in headers:
                    if len(param.keys) > 1:
                        key = next((k for k in param.keys if k.lower() in first), param.keys[0]).lower()
                    else:
                        key = param.keys[0].lower()
                    value = (all_values.get(key) or _MISSING) if param.sequence else first.get(key, _MISSING)
                    _value(param, value, found)
            if cookies:
                received = request.cookies
                for param in cookies:
                    _value(param, _pick(param, received, None), found)
            if bodies:
                if whole_body:
                    _value(bodies[0], body, found)
                else:
                    for field in bodies:
                        value = _MISSING
                        if body is not _MISSING and not isinstance(body, bytes):
                            if not isinstance(body, dict):
                                raise _InvalidError  # embedded fields need an object
                            for key in field.keys:
                                value = body.get(key, _MISSING)
                                if value is not _MISSING:
                                    break
                        _value(field, value, found)
            return found
        except _InvalidError:
            return None

    async def exact(request: Request, body: Any) -> dict[str, Any]:
        found, errors = await _errors(route, request, body)
        if errors:
            raise RequestValidationError(errors, body=None if body is NO_BODY else body)
        return found

    return Compiled(run, request_param, bool(bodies), strict, values, exact)
