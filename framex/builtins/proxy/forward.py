"""Forwarding to an upstream: requests to mirrored routes, and ``call_plugin_api`` calls."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote, urlencode

from pydantic_core import to_json, to_jsonable_python
from starlette.types import Message, Receive, Scope, Send

from framex.builtins.proxy.client import (
    DROPPED_REQUEST_HEADERS,
    DROPPED_RESPONSE_HEADERS,
    Upstream,
    UpstreamUnavailableError,
    end_to_end,
    failure,
)
from framex.builtins.proxy.http1 import Response
from framex.builtins.proxy.openapi import SSE, Operation
from framex.errors import UpstreamError
from framex.http.auth import route_path
from framex.http.envelope import envelope_body
from framex.logs import current_request_id
from framex.tracing import Tracing, active_tracing, trace_headers

logger = logging.getLogger("framex.proxy")


class _ClientGoneError(Exception):
    """The client disconnected while its body was being sent upstream."""


async def _body_chunks(receive: Receive, first: Message) -> AsyncIterator[bytes]:
    message = first
    while True:
        if message["type"] == "http.disconnect":
            raise _ClientGoneError
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return
        message = await receive()


async def _read_body(receive: Receive, limit: int) -> bytes | AsyncIterator[bytes]:
    """The body in one piece when it is small, else an iterator that streams it."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGoneError
        chunk = message.get("body", b"")
        if not message.get("more_body", False):
            parts.append(chunk)
            return b"".join(parts)
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            return _chain(parts, _body_chunks(receive, await receive()))


async def _chain(head: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in head:
        yield chunk
    async for chunk in rest:
        yield chunk


async def _send_error(send: Send, status: int, message: str) -> None:
    body = envelope_body(None, status=status, message=message, request_id=current_request_id())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def unavailable_message(exc: UpstreamUnavailableError) -> tuple[int, str]:
    """Status and client-facing message for an upstream that failed (no URL, no detail)."""
    if exc.timed_out:
        return 504, "Gateway timeout: the upstream service did not answer in time."
    if exc.invalid:
        return 502, "Bad gateway: the upstream service sent an invalid or incomplete answer."
    return 502, "Bad gateway: the upstream service is unreachable."


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENCODED = re.compile(rb"[\x21-\x7e]*")
"""What a path or query may hold on a request line: visible ASCII (the rest percent-encoded)."""
_PATH_SAFE = "/:@!$&'()*+,;="


def upstream_target(scope: Scope) -> tuple[bytes, bytes] | None:
    """The path and query to send upstream, as the caller encoded them (``raw_path``),
    without the ``root_path`` of a mount; None when the decoded path holds control
    characters or either part holds bytes a request line cannot carry."""
    path = route_path(scope)
    if _CONTROL.search(path):
        return None
    raw: bytes | None = scope.get("raw_path")
    root: str = scope.get("root_path", "")
    if raw is not None and root and path != scope["path"]:
        encoded_root = quote(root, safe=_PATH_SAFE).encode("ascii")
        raw = raw[len(encoded_root) :] if raw.startswith(encoded_root) else None
    if raw is None or not raw.startswith(b"/"):
        # No raw path from the server (or a root it spells otherwise): encode the decoded one.
        raw = quote(path, safe=_PATH_SAFE).encode("ascii")
    query: bytes = scope["query_string"]
    if _ENCODED.fullmatch(raw) is None or b"#" in raw or _ENCODED.fullmatch(query) is None or b"#" in query:
        return None
    return raw, query


TRACED_REQUEST_HEADERS = DROPPED_REQUEST_HEADERS | {b"traceparent", b"tracestate"}
"""Request headers not passed on when this service traces: its own span's context replaces the caller's."""


def _upstream_attributes(upstream: Upstream, method: str, path: str) -> dict[str, Any]:
    return {"http.request.method": method, "server.address": upstream.url, "url.template": path}


class ForwardRoute:
    """The ASGI app of one mirrored operation: sends the request upstream as it came and
    the answer back as it comes (streams chunk by chunk)."""

    def __init__(self, upstream: Upstream, operation: Operation) -> None:
        self.upstream = upstream
        self.operation = operation
        self.limit = upstream.settings.max_body_in_memory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracing = active_tracing()
        if tracing is None:
            await self._forward(scope, receive, send, [])
            return
        attributes = _upstream_attributes(self.upstream, self.operation.method, self.operation.path)
        with tracing.span(f"upstream {self.operation.label}", attributes, tracing.kinds.CLIENT) as span:
            status = 0

            def send_status(message: Message) -> Any:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    span.set_attribute("http.response.status_code", status)
                return send(message)

            await self._forward(scope, receive, send_status, trace_headers(tracing))
            if status >= 500:
                tracing.fail(span, str(status))

    async def _forward(self, scope: Scope, receive: Receive, send: Send, trace: list[tuple[bytes, bytes]]) -> None:
        upstream = self.upstream
        method: str = scope["method"]
        path = route_path(scope)
        target = upstream_target(scope)
        if target is None:
            # Refused before anything is sent: decoded, such a path could split the
            # upstream's request line or its log lines.
            await _send_error(send, 400, "Bad request: the path has characters that cannot be forwarded.")
            return
        headers = end_to_end(scope["headers"], TRACED_REQUEST_HEADERS if trace else DROPPED_REQUEST_HEADERS)
        headers += trace  # this service's span, in place of the caller's context
        headers += upstream.auth_headers(path)
        rid = current_request_id()
        if rid:
            headers.append((b"x-request-id", rid.encode("latin-1")))
        try:
            body = await _read_body(receive, self.limit)
            response = await upstream.request(method, target[0], target[1], headers, body)
        except _ClientGoneError:
            return
        except UpstreamUnavailableError as exc:
            logger.warning("%s %s: %s", method, path, exc)
            await _send_error(send, *unavailable_message(exc))
            return
        async with response:
            out = end_to_end(response.headers, DROPPED_RESPONSE_HEADERS)
            status = response.status
            length = response.content_length
            if method == "HEAD" or status in (204, 304):
                # No body follows: the upstream's length (of what a GET would give) stands.
                if length is not None and status not in (204, 304):
                    out.append((b"content-length", str(length).encode()))
                await send({"type": "http.response.start", "status": status, "headers": out})
                await send({"type": "http.response.body", "body": b""})
                return
            if length is not None and not self.operation.stream and response.content_type != SSE:
                try:
                    data = await response.read()
                except (TimeoutError, OSError) as exc:
                    error = failure(upstream.url, exc)
                    logger.warning("%s %s: %s", method, path, error)
                    await _send_error(send, *unavailable_message(error))
                    return
                out.append((b"content-length", str(len(data)).encode()))
                await send({"type": "http.response.start", "status": status, "headers": out})
                await send({"type": "http.response.body", "body": data})
                return
            if not self.operation.stream and response.content_type != SSE:
                # Not a stream by contract: the first body bytes (or the end) come before the
                # status goes out, so an answer broken from its start is a 502, not a 200 cut short.
                try:
                    await response.wait_body()
                except (TimeoutError, OSError) as exc:
                    error = failure(upstream.url, exc)
                    logger.warning("%s %s: %s", method, path, error)
                    await _send_error(send, *unavailable_message(error))
                    return
            await send({"type": "http.response.start", "status": status, "headers": out})
            # Until the upstream ends the stream or the client leaves: a client gone does
            # not stop the server from calling `send`, so its departure is watched for.
            pump = asyncio.ensure_future(self._pump(response, send, method, path))
            watch = asyncio.ensure_future(_disconnected(receive))
            try:
                await asyncio.wait((pump, watch), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (pump, watch):
                    task.cancel()
                await asyncio.gather(pump, watch, return_exceptions=True)

    async def _pump(self, response: Response, send: Send, method: str, path: str) -> None:
        try:
            async for chunk in response.iter_chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (TimeoutError, OSError) as exc:
            # The status is sent. Ending the body cleanly would pass a truncated answer off
            # as whole: returning without the last message makes the server cut the
            # client's connection instead, which the client sees as an incomplete answer.
            logger.warning("%s %s: upstream %s broke off its answer: %s", method, path, self.upstream.url, exc)
            return
        await send({"type": "http.response.body", "body": b""})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def api_caller(upstream: Upstream, operation: Operation) -> Callable[..., Any]:
    """An async function calling ``operation`` with keyword arguments, for ``call_plugin_api``.

    Path and query parameters go by name; the other arguments form the JSON body (one
    argument: its value is the body; several: an object of them). Returns the handler's
    result: a FrameX envelope's ``data``, other JSON as it is, an async iterator of the
    events' data for a stream.
    """
    by_name = {p.name: p for p in operation.params}

    async def call(**kwargs: Any) -> Any:
        path = operation.path
        query: list[tuple[str, Any]] = []
        rest: dict[str, Any] = {}
        for name, value in kwargs.items():
            param = by_name.get(name)
            if param is None:
                rest[name] = value
            elif value is None:
                continue
            elif param.where == "path":
                path = path.replace("{" + name + "}", quote(str(value), safe=""))
            elif param.is_list and isinstance(value, list | tuple):
                query += [(name, _query_value(v)) for v in value]
            else:
                query.append((name, _query_value(value)))
        data = b""
        if rest:
            data = to_json(to_jsonable_python(next(iter(rest.values())) if len(rest) == 1 else rest))
        what = f"`{operation.label}` on {upstream.url}"
        query_string = urlencode(query).encode()
        return await call_upstream(upstream, operation.method, path, query_string, operation.path, data, what)

    call.__name__ = call.__qualname__ = f"proxy_{operation.method.lower()}_{operation.path.strip('/')}"
    return call


async def call_upstream(
    upstream: Upstream, method: str, path: str, query: bytes, rule_path: str, json_body: bytes, what: str
) -> Any:
    """Call the upstream as a client (not forwarding a request) at ``path`` (its parameters
    percent-encoded already; the rest is encoded here): the key of ``rule_path``,
    this request's id, a JSON body if any. Returns :func:`result_of` the answer, or an
    async iterator of the events of a stream; failures raise :class:`UpstreamError`
    starting with ``what``."""
    tracing = active_tracing()
    if tracing is None:
        return await _call_upstream(upstream, method, path, query, rule_path, json_body, what, None)
    attributes = _upstream_attributes(upstream, method, rule_path)
    # An upstream's stream (SSE) keeps the span until its last event.
    work = _call_upstream(upstream, method, path, query, rule_path, json_body, what, tracing)
    return await tracing.spanned(f"upstream {method} {rule_path}", attributes, work, tracing.kinds.CLIENT)


async def _call_upstream(
    upstream: Upstream,
    method: str,
    path: str,
    query: bytes,
    rule_path: str,
    json_body: bytes,
    what: str,
    tracing: Tracing | None,
) -> Any:
    headers = upstream.auth_headers(rule_path)
    if tracing is not None:
        headers += trace_headers(tracing)
    rid = current_request_id()
    if rid:
        headers.append((b"x-request-id", rid.encode("latin-1")))
    if json_body:
        headers.append((b"content-type", b"application/json"))
    try:
        target = quote(path, safe=_PATH_SAFE + "%").encode("ascii")
        response = await upstream.request(method, target, query, headers, json_body)
        if response.content_type == SSE and response.status < 400:
            return _events(response, what)
        async with response:
            raw = await response.read()
    except UpstreamUnavailableError as exc:
        raise UpstreamError(f"{what}: {exc}") from exc
    except (TimeoutError, OSError) as exc:
        raise UpstreamError(f"{what}: {failure(upstream.url, exc)}") from exc
    return result_of(response.status, raw, what)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def result_of(status: int, raw: bytes, what: str) -> Any:
    """The result in an upstream's answer: a FrameX envelope's ``data``, other JSON as it
    is; an error status raises :class:`UpstreamError` with the upstream's message."""
    doc: Any
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = raw.decode("utf-8", "replace")
    enveloped = isinstance(doc, dict) and {"status", "message", "data"} <= doc.keys()
    if status >= 400:
        detail = doc["message"] if enveloped else str(doc)[:200]
        raise UpstreamError(f"{what} answered {status}: {detail}", status=status)
    return doc["data"] if enveloped else doc


async def _events(response: Response, what: str) -> AsyncIterator[Any]:
    """The data of each Server-Sent Event (JSON decoded when it is JSON)."""
    async with response:
        pending = b""
        data: list[str] = []
        try:
            async for chunk in response.iter_chunks():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw_line in lines:
                    line = raw_line.rstrip(b"\r").decode("utf-8")
                    if line.startswith("data:"):
                        data.append(line[5:].removeprefix(" "))
                    elif not line and data:
                        text = "\n".join(data)
                        data = []
                        try:
                            yield json.loads(text)
                        except ValueError:
                            yield text
        except (TimeoutError, OSError) as exc:
            raise UpstreamError(f"{what}: the stream broke off: {exc}") from exc
