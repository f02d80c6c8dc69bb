"""Errors as enveloped responses with their real HTTP status.

A 500 never carries exception text: the exception is logged with a request id, and
the client gets that id (body and ``X-Request-ID`` header) to quote.
"""

from __future__ import annotations

import logging
import re
import uuid
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from framex.consts import REQUEST_ID_HEADER
from framex.http.envelope import envelope_response

logger = logging.getLogger("framex.http")

_SAFE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

REQUEST_ID_SCOPE_KEY = "framex.request_id"
"""The ASGI scope key where the observability middleware keeps the id it gave the request."""
PROXY_ID_SCOPE_KEY = "framex.request_id_from_proxy"
"""Set in the scope when a proxy in front (Ray Serve's) assigned the id and sends the header itself."""
ERROR_TYPE_SCOPE_KEY = "framex.error_type"
"""The type of the exception a 500 answered, for the request's span (its message stays in the log)."""


def safe_request_id(value: str | None) -> str | None:
    """``value`` when it is safe to log and echo back as a request id, else None."""
    return value if value is not None and _SAFE_ID.fullmatch(value) else None


def request_id(request: Request) -> str:
    """The request's id: the one the middleware gave it (sent as ``X-Request-ID`` and put on
    its log records), else the client's ``X-Request-ID`` when it is safe to log, else the
    server's own id.
    """
    assigned = request.scope.get(REQUEST_ID_SCOPE_KEY)
    if assigned is not None:
        return str(assigned)
    given = request.headers.get(REQUEST_ID_HEADER)
    if given is not None and _SAFE_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def request_id_headers(request: Request, rid: str) -> dict[str, str] | None:
    """The ``X-Request-ID`` response header, unless a proxy in front already sets it."""
    if request.scope.get(PROXY_ID_SCOPE_KEY):
        return None
    return {REQUEST_ID_HEADER: rid}


def internal_error(request: Request, where: str, exc: BaseException) -> Response:
    """Log ``exc`` and answer 500 without its text."""
    rid = request_id(request)
    request.scope[ERROR_TYPE_SCOPE_KEY] = type(exc).__qualname__
    logger.error("%s %s failed in %s (request id %s)", request.method, request.url.path, where, rid, exc_info=exc)
    return envelope_response(
        None,
        status=500,
        message=f"Internal server error. Quote request id {rid} when reporting it.",
        headers=request_id_headers(request, rid),
        request_id=rid,
    )


def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail: Any = exc.detail
    if not isinstance(detail, str):
        message, data = HTTPStatus(exc.status_code).phrase, detail
    else:
        message, data = detail, None
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    headers = dict(exc.headers) if exc.headers else None
    return envelope_response(data, status=exc.status_code, message=message, headers=headers)


def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # `input` and `ctx` are left out: they can echo back what the client sent.
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    first = errors[0] if errors else None
    where = ".".join(str(p) for p in first["loc"]) if first else ""
    message = f"Invalid request: `{where}`: {first['msg']}" if first else "Invalid request"
    return envelope_response(errors, status=422, message=message)


def _unhandled(request: Request, exc: Exception) -> Response:
    return internal_error(request, "the application", exc)


def install_error_handlers(app: FastAPI) -> None:
    """Envelope every error the app can produce."""
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unhandled)
