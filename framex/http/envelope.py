"""The response envelope: ``{"status", "message", "timestamp", "data"}``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from pydantic_core import to_json
from starlette.responses import Response

T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    """Every enveloped response has this shape; errors use the real HTTP status."""

    status: int
    message: str
    timestamp: str
    data: T | None = None
    request_id: str | None = None


class ValidationProblem(BaseModel):
    """One problem of a 422 answer: where (``["body", "item"]``), what, and its pydantic type."""

    loc: list[str | int]
    msg: str
    type: str


ValidationErrorEnvelope = Envelope[list[ValidationProblem]]
"""The body of every 422 answer (see ``framex.http.errors``), as documented in OpenAPI."""


_millisecond = -1
_text = ""
_success = b""


def timestamp() -> str:
    """Now, UTC, ISO 8601 with milliseconds: ``2026-01-02T03:04:05.678+00:00``.

    Formatted once per millisecond, with the success envelope's opening bytes: formatting
    dates stays off the profile."""
    global _millisecond, _text, _success
    millisecond = int(time.time() * 1000)
    if millisecond != _millisecond:
        second, rest = divmod(millisecond, 1000)
        _text = f"{datetime.fromtimestamp(second, UTC).strftime('%Y-%m-%dT%H:%M:%S')}.{rest:03d}+00:00"
        _success = b'{"status":200,"message":"success","timestamp":"' + _text.encode("ascii") + b'","data":'
        _millisecond = millisecond
    return _text


def envelope_body(data: Any, status: int = 200, message: str = "success", **extra: Any) -> bytes:
    """Serialize an envelope (pydantic models, datetimes, ... inside ``data`` included)."""
    if status == 200 and message == "success" and not extra:
        timestamp()
        # The same bytes as serializing the whole envelope, with only `data` serialized here.
        return _success + to_json(data) + b"}"
    body = {"status": status, "message": message, "timestamp": timestamp(), "data": data}
    body.update(extra)
    return to_json(body)


class JSONBytesResponse(Response):
    """A response of ready JSON bytes: Starlette's headers for them, made without parsing any."""

    media_type = "application/json"

    def __init__(self, body: bytes, status_code: int = 200) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = [(b"content-length", str(len(body)).encode("latin-1")), _JSON_TYPE]


_JSON_TYPE = (b"content-type", b"application/json")


def json_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response of ``body``, with the headers Starlette's ``Response`` would give it."""
    if headers is None and status >= 200 and status not in (204, 304):
        return JSONBytesResponse(body, status)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def envelope_response(
    data: Any,
    status: int = 200,
    message: str = "success",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """An enveloped JSON response."""
    return json_response(envelope_body(data, status, message, **extra), status, headers)


def result_response(result: Any, raw: bool, status: int = 200) -> Response:
    """A handler's result as its response: a ``Response`` as it is, else JSON, enveloped
    unless ``raw``. Raises when the result cannot be serialized."""
    if isinstance(result, Response):
        return result
    return json_response(to_json(result) if raw else envelope_body(result, status), status)


def envelope_model(data_type: Any) -> Any:
    """``Envelope[data_type]`` for the OpenAPI document, or ``Envelope[Any]`` if pydantic can't."""
    try:
        model = Envelope[data_type]
        model.model_json_schema()
        return model
    except Exception:
        return Envelope[Any]
