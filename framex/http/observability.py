"""Request ids, timing, the access log and HTTP metrics: one pure ASGI middleware.

``build_app`` adds it last, so it wraps every other middleware: it sees every response,
the auth middleware's 401s and CORS answers included. Per request it

- takes the client's ``X-Request-ID`` when it is safe to log (the rule of
  :func:`framex.http.errors.request_id`) or makes one, keeps it in the scope (for the
  error handlers) and in a context variable (for log records, ``@remote`` thread jobs
  included), and sends it back in the ``X-Request-ID`` header of the response;
- after the response, when metrics or the access log are on, notes the request as
  finished (one tuple on a queue).

Finished requests are recorded in passes, every :data:`RECORD_INTERVAL` seconds, on the
event loop that served them: each is labelled with its route template
(``/api/v1/items/{item_id}``, never the raw path), counted in the metrics and given its
``framex.access`` line (with the time it finished). Doing this in a pass rather than at
the end of every request costs a third of the CPU time: interleaved with serving, the
same code runs with cold caches. A scrape of the metrics and the app's shutdown record
what is pending first, so nothing goes uncounted or unwritten.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from random import getrandbits
from time import perf_counter
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from framex.http.errors import PROXY_ID_SCOPE_KEY, REQUEST_ID_SCOPE_KEY, safe_request_id
from framex.http.marks import RouteMarks
from framex.http.metrics import UNMATCHED, Metrics, metrics_endpoint
from framex.logs import REQUEST_ID, sole_handler

if TYPE_CHECKING:
    from fastapi import FastAPI

access_logger = logging.getLogger("framex.access")
logger = logging.getLogger("framex.http")

RECORD_INTERVAL = 0.05
"""Seconds between two passes that record finished requests (metrics, access lines)."""
LOST_PASS = 4 * RECORD_INTERVAL
"""A pass this late was lost with the event loop it was planned on (a test client's,
closed): the next request records what is pending."""

_HEADER = b"x-request-id"
_ACCESS_MESSAGE = "%s %s %d %.2f ms"


CLIENT_CLOSED_REQUEST = 499
"""The status logged and counted for a request whose client went away before its response
was complete (nginx's "client closed request"); the client got no answer."""


_SHUTDOWN_CANCEL = "timeout graceful shutdown exceeded"
"""What uvicorn's cancellation of a request still running when ``server.shutdown_timeout_s``
is up says (its client gets uvicorn's 500)."""


def client_left(receive: Receive) -> bool:
    """Whether the server saw the client of this request leave before the response was complete.

    uvicorn neither cancels such a request nor tells the app: it drops what the app sends
    afterwards, and its request cycle (the owner of ``receive``) records that the client
    left. Other servers: False (Ray Serve cancels the request instead).
    """
    return getattr(getattr(receive, "__self__", None), "disconnected", False) is True


def new_request_id() -> str:
    """32 random hex digits, like ``uuid4().hex``, for a fraction of its cost.

    ``random`` is reseeded in forked children, so worker processes never repeat each
    other's ids; the ids are labels, not secrets.
    """
    return getrandbits(128).to_bytes(16, "big").hex()


def _given_id(scope: Scope) -> str | None:
    headers: Iterable[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == _HEADER:
            return safe_request_id(value.decode("latin-1"))
    return None


def with_request_id(message: Message, header: tuple[bytes, bytes]) -> Message:
    """``message`` (a response start) with the ``X-Request-ID`` ``header``, unless it has one."""
    # A copy: the headers may be a response object's own list (a cached response is
    # sent again and again). Names are lowercase in ASGI.
    headers = list(message.get("headers", ()))
    for name, _ in headers:
        if name == _HEADER:
            return message  # an error response carries it already (the same id)
    headers.append(header)
    return {**message, "headers": headers}


def _route_template(route: BaseRoute | None, root: str, mounted: str) -> str:
    """The ``route`` label: the route's path template (relative to the app's root), else :data:`UNMATCHED`."""
    template = getattr(route, "path_format", None)
    if not isinstance(template, str):
        return UNMATCHED
    if mounted != root and not isinstance(route, Mount):
        template = mounted[len(root) :] + template  # a route of a mounted app: relative to the mount
    return template


def _log_access(message: str, fields: dict[str, Any], created: float) -> None:
    # What `info()` does, minus looking up the caller's frame and checking the extra
    # fields one by one (none of them is a record attribute); made at `created`.
    record = access_logger.makeRecord("framex.access", logging.INFO, "", 0, message, (), None)
    record.__dict__.update(fields)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    access_logger.handle(record)


_Finished = tuple[str, str, "BaseRoute | None", str, str, "str | None", int, float, float, str]
"""A finished request: method, path, route, root path (at the start and at the end), client,
status, seconds taken, end (``perf_counter``), request id."""


class RequestRecords:
    """Finished requests of one app, waiting for the pass that counts and logs them.

    ``metrics`` None: no counting; ``access_log`` False: no lines. A provider of the
    container; the middleware notes requests into it, a metrics scrape and the app's
    shutdown :meth:`record` what waits.
    """

    def __init__(self, metrics: Metrics | None, access_log: bool, exclude_paths: Iterable[str] = ()) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self.exclude_paths = frozenset(exclude_paths)
        self.observing = metrics is not None or access_log
        self.routes: list[BaseRoute] = []
        """The app's routes, to label requests answered before routing (set when the app is built)."""
        # A deque: `record` may run in another thread (a scrape from a test), and
        # `append`/`popleft` are atomic.
        self._finished: deque[_Finished] = deque()
        self._pass_due = -math.inf
        """When the planned pass is late (-inf: none planned, the next request plans one)."""
        if metrics is not None:
            metrics.before_collect = self.record

    def note(self, scope: Scope, root: str, status: int, start: float, rid: str) -> None:
        """Note a finished request for the next pass."""
        if self.metrics is None and (
            scope["path"] in self.exclude_paths or not access_logger.isEnabledFor(logging.INFO)
        ):
            return  # only the access log is on, and it writes nothing for this request
        end = perf_counter()
        route = scope.get("route")
        if route is None and status != 404:
            # Answered before routing (an auth 401, a CORS preflight): the route it was for.
            route = self._match(scope)
        # What the pass needs, not the scope: kept whole, the request's objects would
        # outlive it and make the garbage collector run more often.
        client = scope.get("client")
        self._finished.append(
            (
                scope["method"],
                scope["path"],
                route,
                root,
                scope.get("root_path", ""),
                client[0] if client else None,
                status,
                end - start,
                end,
                rid,
            )
        )
        if end >= self._pass_due:
            self._plan_pass(end)

    def _plan_pass(self, now: float) -> None:
        if len(self._finished) > 1:
            self.record()  # the planned pass was lost with its loop
            return
        try:
            asyncio.get_running_loop().call_later(RECORD_INTERVAL, self.record)
        except RuntimeError:  # no loop in this thread: only an ASGI call made by hand
            self.record()
            return
        self._pass_due = now + LOST_PASS

    def record(self) -> None:
        """Count and log every request finished so far (the planned pass, a scrape and shutdown call it)."""
        self._pass_due = -math.inf
        finished = self._finished
        metrics = self.metrics
        if not finished:
            if metrics is not None and metrics.shared is not None:
                metrics.publish()  # a scrape: the in-flight count and `.remote()` calls may have changed
            return
        log = self.access_log and access_logger.isEnabledFor(logging.INFO)
        # `framex run`'s logging and nothing else: lines without records, one queue item a pass.
        handler = sole_handler(access_logger, logging.INFO) if log else None
        lines: list[str] = []
        to_wall = time.time() - perf_counter()
        try:
            while finished:
                method, path, route, root, mounted, client, status, seconds, end, rid = finished.popleft()
                template = _route_template(route, root, mounted)
                if metrics is not None:
                    metrics.observe_request(method, template, status, seconds)
                if not log or path in self.exclude_paths:
                    continue
                ms = seconds * 1000
                message = _ACCESS_MESSAGE % (method, template, status, ms)
                fields = {
                    "client": client,
                    "duration_ms": int(ms * 1000) / 1000,  # to the microsecond (cheaper than round())
                    "method": method,
                    "path": path,
                    "request_id": rid,
                    "route": template,
                    "status": status,
                }
                if handler is not None:
                    line = handler.format_fields(logging.INFO, "framex.access", message, fields, end + to_wall)
                    if line is not None:
                        lines.append(line)
                else:
                    _log_access(message, fields, end + to_wall)
        except Exception:
            # Never fatal: the next pass records the rest.
            logger.exception("Recording finished requests failed (metrics, access log)")
        finally:
            if handler is not None and lines:
                handler.queue_lines(lines)
            if metrics is not None and metrics.shared is not None:
                metrics.publish()  # for the scrapes other worker processes answer

    def _match(self, scope: Scope) -> BaseRoute | None:
        partial = None
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return route
            if match is Match.PARTIAL and partial is None:
                partial = route
        return partial


class ObservabilityMiddleware:
    """See the module docstring. ``records`` takes the finished requests; ``proxy_ids``
    gives the id a proxy in front assigned (Ray Serve), if any; ``marks`` (the loop
    watchdog's) name the route each request's task serves."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        records: RequestRecords,
        proxy_ids: Callable[[], str | None] | None = None,
        marks: RouteMarks | None = None,
    ) -> None:
        self.app = app
        self.records = records
        self.metrics = records.metrics
        self.observing = records.observing
        self.proxy_ids = proxy_ids
        self.marks = marks

    def begin(self, scope: Scope) -> Begun:
        """Start observing a request: its id (in the scope and the log context), the
        in-flight count, the watchdog's mark."""
        start = perf_counter()
        proxy_ids = self.proxy_ids
        rid = _given_id(scope)
        if rid is None:
            rid = (proxy_ids is not None and safe_request_id(proxy_ids())) or new_request_id()
        scope[REQUEST_ID_SCOPE_KEY] = rid
        token = REQUEST_ID.set(rid)
        if proxy_ids is None:
            header: tuple[bytes, bytes] | None = (_HEADER, rid.encode("ascii"))
        else:
            header = None
            scope[PROXY_ID_SCOPE_KEY] = True
        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight += 1
        marks = self.marks
        marked = marks.mark(scope) if marks is not None else None
        return start, rid, token, scope.get("root_path", ""), header, marked

    def end(self, scope: Scope, receive: Receive, begun: Begun, status: int) -> None:
        """Finish observing a request that ended with ``status`` (0: none sent, an exception)."""
        start, rid, _, root, _, marked = begun
        if marked is not None:
            self.marks.unmark(marked)  # type: ignore[union-attr]
        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight -= 1
        if self.observing:
            if status != CLIENT_CLOSED_REQUEST and client_left(receive):
                status = CLIENT_CLOSED_REQUEST
            # No status: an exception, which Starlette's ServerErrorMiddleware (around
            # this one) answers with a 500.
            self.records.note(scope, root, status or 500, start, rid)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        begun = self.begin(scope)
        sending = StatusSend(send, begun[4])
        cancelled: int | None = None
        try:
            await self.app(scope, receive, sending)
        except asyncio.CancelledError as exc:
            cancelled = cancelled_status(exc, sending.status)
            raise
        finally:
            self.end(scope, receive, begun, sending.status if cancelled is None else cancelled)
        # Not reset after an exception: the error's log records (ours and the server's)
        # carry the id too; the request's task ends with them.
        REQUEST_ID.reset(begun[2])


class StatusSend:
    """``send`` that notes the status of the response it starts and adds the request id
    ``header`` (None: a proxy in front adds it)."""

    __slots__ = ("header", "send", "status")

    def __init__(self, send: Send, header: tuple[bytes, bytes] | None) -> None:
        self.send = send
        self.header = header
        self.status = 0
        """0 until the response starts."""

    # Not `async def`: handing on the awaitable of `send` saves a coroutine per message.
    def __call__(self, message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            if self.header is not None:
                message = with_request_id(message, self.header)
        return self.send(message)


Begun = tuple[float, str, Any, str, "tuple[bytes, bytes] | None", Any]
"""What :meth:`ObservabilityMiddleware.begin` started: the start (``perf_counter``), the
request id, its log-context token, the root path, the ``X-Request-ID`` header to send
(None when a proxy in front sends it) and the watchdog's mark."""


def cancelled_status(exc: asyncio.CancelledError, status: int) -> int:
    """The status to record for a request cancelled with ``exc``.

    Ray Serve cancels the request of a client that went away: not a server error (499).
    uvicorn cancels what still runs when `server.shutdown_timeout_s` is up, and answers it
    500 itself: that one keeps its status.
    """
    return status if _SHUTDOWN_CANCEL in str(exc) else CLIENT_CLOSED_REQUEST


def install_observability(
    app: FastAPI,
    records: RequestRecords,
    metrics: Metrics | None,
    metrics_path: str,
    proxy_ids: Callable[[], str | None] | None,
    marks: RouteMarks | None,
) -> None:
    """The metrics route (when ``metrics`` is given) and the middleware.

    Call it last in ``build_app``: the middleware added last is the outermost.
    """
    if metrics is not None:
        app.add_route(metrics_path, metrics_endpoint(metrics), methods=["GET"], include_in_schema=False)
    records.routes = app.router.routes
    app.add_middleware(ObservabilityMiddleware, records=records, proxy_ids=proxy_ids, marks=marks)
