"""Logging: the id of the request being served, the text and JSON formats, and the one
set-up ``framex run`` makes (the ``log`` section).

FrameX logs with the standard :mod:`logging` module only. While a request is served,
its id lives in a context variable (set by the HTTP middleware, copied into ``@remote``
work on the local thread pool); :class:`RequestIdFilter` puts it on every record as
``request_id``. ``framex run`` installs one root handler (:func:`configure_logging`);
an app embedded in another program logs through that program's handlers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from framex.config import LogSettings

REQUEST_ID: ContextVar[str | None] = ContextVar("framex_request_id", default=None)
"""The id of the request being served in this context (None outside requests)."""

_RECORD_FIELDS = frozenset(
    {*logging.LogRecord("", 0, "", 0, "", None, None).__dict__, "message", "asctime", "taskName", "request_id"}
)
"""Attributes every record has: the JSON format writes the others as extra fields."""
_JSON = json.JSONEncoder(default=str)


def current_request_id() -> str | None:
    """The id of the request being served here, or None."""
    return REQUEST_ID.get()


class RequestIdFilter(logging.Filter):
    """Sets ``record.request_id`` to the current request's id (None outside requests), and
    ``trace_id`` / ``span_id`` while a recorded OpenTelemetry span is current.

    Attach it to a handler (not a logger: logger filters skip records of child loggers).
    An id already on the record (``extra={"request_id": ...}``) is kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        # Only when something loaded OpenTelemetry (tracing on): a dict lookup otherwise.
        otel_trace = sys.modules.get("opentelemetry.trace")
        if otel_trace is not None:
            add_trace_ids(record, otel_trace)
        return True


def add_trace_ids(record: logging.LogRecord, otel_trace: Any) -> None:
    """``trace_id`` and ``span_id`` (hex) of the current span, when it is sampled."""
    context = otel_trace.get_current_span().get_span_context()
    if context.trace_flags.sampled and not hasattr(record, "trace_id"):
        record.trace_id = format(context.trace_id, "032x")
        record.span_id = format(context.span_id, "016x")


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: str) -> str:
    """``text`` with every character that is not printable (line breaks, terminal escape
    codes, Unicode line separators...) written as a Python escape: one record, one line,
    whatever a caller put in a path or a header."""
    if text.isprintable():  # the usual case, checked in C
        return text
    return "".join(
        c if c.isprintable() else _ESCAPES.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
        for c in text
    )


CONTINUATION = "framex_continuation"
"""``extra`` key of a record that FrameX writes as a block (the start-up summary): a list of
lines the text format puts under the message, each indented and escaped on its own."""


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message``; during a request ``LEVEL logger [request id]: message``,
    and in a trace ``LEVEL logger [request id trace=<trace id> span=<span id>]: message``.

    Control characters in the message (arguments included), the logger's name and the
    request id are escaped (:func:`escape_controls`): text from callers cannot start a
    line that looks like a record of its own. Tracebacks keep their lines, and so do the
    :data:`CONTINUATION` lines of a block, each starting with a space.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - the logging API's name
        line = self.format_fields(record.created, record.levelname, record.name, record.message, record.__dict__)
        more = record.__dict__.get(CONTINUATION)
        if not more:
            return line
        # Indented: a continuation line can never look like a record, which starts with its level.
        return "\n".join([line, *(escape_controls(t if t[:1] == " " else f"  {t}") for t in map(str, more))])

    def format_fields(self, created: float, levelname: str, name: str, message: str, fields: Mapping[str, Any]) -> str:
        """The line of a record with these attributes (and no exception or stack)."""
        rid = fields.get("request_id")
        trace_id = fields.get("trace_id")
        if trace_id:
            tag = f"{rid} " if rid else ""
            rid = f"{tag}trace={trace_id} span={fields.get('span_id')}"
        line = f"{levelname} {name} [{rid}]: {message}" if rid else f"{levelname} {name}: {message}"
        return line if line.isprintable() else escape_controls(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, ``request_id``, then the record's extra fields (by name), and
    ``exception`` / ``stack`` when present. Values JSON cannot hold are written as their
    ``str()``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._stamp = ""

    def _time(self, created: float) -> str:
        # strftime costs more than the rest of a record: one call per second of records.
        second = int(created)
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._stamp}.{int((created - second) * 1000):03d}Z"

    def _doc(
        self, created: float, levelname: str, name: str, message: str, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "time": self._time(created),
            "level": levelname,
            "logger": name,
            "message": message,
            "request_id": fields.get("request_id"),
        }
        for key in sorted(fields):
            if key not in doc:
                doc[key] = fields[key]
        return doc

    def format_fields(self, created: float, levelname: str, name: str, message: str, fields: Mapping[str, Any]) -> str:
        """The line of a record with these attributes and extra ``fields`` (and no exception or stack)."""
        return _JSON.encode(self._doc(created, levelname, name, message, fields))

    def format(self, record: logging.LogRecord) -> str:
        attributes = record.__dict__
        fields = {key: attributes[key] for key in attributes.keys() - _RECORD_FIELDS}
        fields["request_id"] = attributes.get("request_id")
        doc = self._doc(record.created, record.levelname, record.name, record.getMessage(), fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return _JSON.encode(doc)


_FORMATTERS = (TextFormatter, JsonFormatter)


def formatter(fmt: str) -> logging.Formatter:
    """The formatter of ``log.format`` (``text`` or ``json``)."""
    return JsonFormatter() if fmt == "json" else TextFormatter()


MAX_QUEUED = 100_000
"""Records waiting for the writer thread beyond which new ones are dropped (and counted)."""
FLUSH_TIMEOUT = 10.0
"""Seconds :meth:`QueueingHandler.flush` waits for the writer thread."""
WRITE_INTERVAL = 0.05
"""Seconds the writer thread rests after a write, letting the lines that come meanwhile
pile up: one write, one thread switch per interval, not per line (under load, a thread
switch and a system call per request would cost more than the rest of the access log)."""
_STOP = object()


class QueueingHandler(logging.Handler):
    """Formats records where they are logged, and writes them to ``stream`` from a thread.

    The thread that logs (the event loop, serving a request) formats the record and puts
    the line on a queue: it never waits for the terminal or the pipe. The writer thread
    writes every line queued so far with one ``write``, then rests
    :data:`WRITE_INTERVAL` (a line waits that long at most). Lines, not records, are
    queued: a record waiting in a queue would outlive the garbage collector's young
    generation and cost more than formatting it. When the output cannot keep up and
    :data:`MAX_QUEUED` lines wait, new records are dropped and counted, and a warning says
    how many once the writer catches up. :meth:`flush` waits until everything queued so
    far is written; :meth:`close` (also called by :func:`logging.shutdown` at exit)
    writes what is queued and stops the thread.
    """

    def __init__(self, stream: TextIO, max_queued: int = MAX_QUEUED) -> None:
        super().__init__()
        self.stream = stream
        self.max_queued = max_queued
        self.dropped = 0
        """Records dropped so far because :data:`MAX_QUEUED` were waiting."""
        self._reported = 0
        self._records: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._wake = threading.Event()
        """Ends the writer's rest early (flush, close)."""
        self._thread = threading.Thread(target=self._write_loop, name="framex-log-writer", daemon=True)
        self._thread.start()

    def handle(self, record: logging.LogRecord) -> bool:
        # `Handler.handle` takes the handler's lock around `emit`; a SimpleQueue needs none.
        result: Any = self.filter(record)
        if not result:
            return False
        self.emit(result if isinstance(result, logging.LogRecord) else record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        if self._records.qsize() >= self.max_queued:
            self.dropped += 1
            return
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._records.put(line)

    def format_fields(
        self, level: int, name: str, message: str, fields: Mapping[str, Any], created: float
    ) -> str | None:
        """The line a record of logger ``name`` with these attributes would give, made at
        ``created`` (None if formatting failed: reported as a record would be).

        For :meth:`queue_lines`: when this handler alone would get the records
        (:func:`sole_handler`), making them costs more than formatting their lines.
        """
        formatter: Any = self.formatter
        try:
            line: str = formatter.format_fields(created, logging.getLevelName(level), name, message, fields)
        except Exception:
            self.handleError(logging.makeLogRecord({"name": name, "levelno": level, "msg": message}))
            return None
        return line

    def queue_lines(self, lines: list[str]) -> None:
        """Queue lines made by :meth:`format_fields` for the writer, as one item."""
        if self._records.qsize() >= self.max_queued:
            self.dropped += len(lines)
            return
        self._records.put("\n".join(lines))

    @property
    def formats_alone(self) -> bool:
        """Whether FrameX's own formatter and filter are all that touch its records."""
        filters = self.filters
        return type(self.formatter) in _FORMATTERS and (
            not filters or (len(filters) == 1 and type(filters[0]) is RequestIdFilter)
        )

    def flush(self) -> None:
        """Wait until the records queued so far are written (at most :data:`FLUSH_TIMEOUT` s)."""
        if self._thread.is_alive():
            written = threading.Event()
            self._records.put(written)
            self._wake.set()
            written.wait(FLUSH_TIMEOUT)

    def close(self) -> None:
        with self.lock or contextlib.nullcontext():
            closing, self._closed = not self._closed, True
        if closing and self._thread.is_alive():
            self._records.put(_STOP)
            self._wake.set()
            self._thread.join(FLUSH_TIMEOUT)
        super().close()

    def _write_loop(self) -> None:
        records = self._records
        while True:
            batch = [records.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < 10_000:
                    batch.append(records.get_nowait())
            lines: list[str] = []
            done: list[threading.Event] = []
            stop = False
            for item in batch:
                if isinstance(item, str):
                    lines.append(item)
                elif item is _STOP:
                    stop = True
                else:
                    done.append(item)
            if self.dropped != self._reported:
                dropped, self._reported = self.dropped - self._reported, self.dropped
                warning = logging.makeLogRecord(
                    {
                        "name": "framex.logs",
                        "levelno": logging.WARNING,
                        "levelname": "WARNING",
                        "msg": f"{dropped} log record(s) dropped: the log output did not keep up.",
                    }
                )
                lines.append(self.format(warning))
            if lines:
                lines.append("")  # a line end after the last line too
                try:
                    self.stream.write("\n".join(lines))
                    self.stream.flush()
                except Exception:
                    self.handleError(logging.makeLogRecord({"msg": "writing the log failed"}))
            for event in done:
                event.set()
            if stop:
                return
            # `flush` and `close` queue their item before setting the event, so clearing
            # it here never hides work: the next `get` returns that item.
            self._wake.wait(WRITE_INTERVAL)
            self._wake.clear()


def sole_handler(logger: logging.Logger, level: int) -> QueueingHandler | None:
    """The handler that alone gets ``logger``'s records at ``level``, if it is a
    :class:`QueueingHandler` as :func:`configure_logging` installs it and nothing else
    would see or change those records (no other handler, no logger filter, no custom
    record factory); else None.

    Then its :meth:`QueueingHandler.format_fields` and :meth:`~QueueingHandler.queue_lines`
    write what logging would, for less:
    the access log takes this path under ``framex run``.
    """
    # Called per request: plain attribute reads only.
    if logger.disabled or logger.filters or logging.getLogRecordFactory() is not logging.LogRecord:
        return None
    if not logger.isEnabledFor(level):
        return None
    found: logging.Handler | None = None
    node: logging.Logger | None = logger
    while node is not None:
        handlers = node.handlers
        if handlers:
            if found is not None or len(handlers) > 1:
                return None
            found = handlers[0]
        if not node.propagate:
            break
        node = node.parent
    if type(found) is QueueingHandler and found.level <= level and found.formats_alone:
        return found
    return None


class LoggingSetup:
    """What :func:`configure_logging` installed; :meth:`close` writes what is queued and removes it."""

    def __init__(self, handler: QueueingHandler | None = None) -> None:
        self.handler = handler
        """The root handler installed (None: the process had configured logging already)."""

    def close(self) -> None:
        handler = self.handler
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()


def configure_logging(settings: LogSettings, stream: TextIO | None = None) -> LoggingSetup:
    """Configure the process's logging from the ``log`` section (``framex run`` calls this once).

    One root handler (:class:`QueueingHandler`) writes every record (FrameX's,
    uvicorn's, the plugins') to ``stream`` (default: stderr) in ``settings.format``, with
    the request id; the root level is ``settings.level``. When the root logger has
    handlers already (a program that configured logging, then calls ``framex.run()``),
    nothing is changed.
    """
    root = logging.getLogger()
    if root.handlers:
        return LoggingSetup()
    handler = QueueingHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(formatter(settings.format))
    handler.addFilter(RequestIdFilter())  # on the handler: it runs in the thread that logs, in its context
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        # Records of uvicorn's own loggers go to the root handler like everything else
        # (`framex run` gives uvicorn no logging configuration of its own).
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    return LoggingSetup(handler)


def configure_replica_logging(settings: LogSettings) -> LoggingSetup:
    """Logging in a Ray Serve replica, from the same ``log`` section as ``framex run``.

    Ray sets up the replica's logging itself; when it left the root logger without a
    handler, this is :func:`configure_logging`. Otherwise FrameX's own loggers (the
    access log among them) get the handler, and stop propagating to Ray's. The replica's
    stderr reaches the driver's output with Ray's ``(ServeReplica ...)`` prefix.
    """
    if not logging.getLogger().handlers:
        return configure_logging(settings)
    framex_logger = logging.getLogger("framex")
    if any(isinstance(h, QueueingHandler) for h in framex_logger.handlers):
        return LoggingSetup()
    handler = QueueingHandler(sys.stderr)
    handler.setFormatter(formatter(settings.format))
    handler.addFilter(RequestIdFilter())
    framex_logger.addHandler(handler)
    framex_logger.setLevel(settings.level.upper())
    framex_logger.propagate = False
    return LoggingSetup(handler)
