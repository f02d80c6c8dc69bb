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
    """Sets ``record.request_id`` to the current request's id (None outside requests).

    Attach it to a handler (not a logger: logger filters skip records of child loggers).
    An id already on the record (``extra={"request_id": ...}``) is kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message``; during a request ``LEVEL logger [request id]: message``."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - the logging API's name
        rid = getattr(record, "request_id", None)
        if rid:
            return f"{record.levelname} {record.name} [{rid}]: {record.message}"
        return f"{record.levelname} {record.name}: {record.message}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, ``request_id``, then the record's extra fields, and ``exception`` /
    ``stack`` when present. Values JSON cannot hold are written as their ``str()``.
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

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        extra = record.__dict__.keys() - _RECORD_FIELDS
        if extra:
            fields = record.__dict__
            for key in sorted(extra):
                doc.setdefault(key, fields[key])
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return _JSON.encode(doc)


def formatter(fmt: str) -> logging.Formatter:
    """The formatter of ``log.format`` (``text`` or ``json``)."""
    return JsonFormatter() if fmt == "json" else TextFormatter()


MAX_QUEUED = 100_000
"""Records waiting for the writer thread beyond which new ones are dropped (and counted)."""
FLUSH_TIMEOUT = 10.0
"""Seconds :meth:`QueueingHandler.flush` waits for the writer thread."""
_STOP = object()


class QueueingHandler(logging.Handler):
    """Formats records where they are logged, and writes them to ``stream`` from a thread.

    The thread that logs (the event loop, serving a request) formats the record and
    puts the line on a queue: it never waits for the terminal or the pipe. The writer
    thread writes every line queued meanwhile with one ``write`` (one system call however
    many lines). Lines, not records, are queued: a record waiting in a queue would
    outlive the garbage collector's young generation and cost more than formatting it.
    When the output cannot keep up and :data:`MAX_QUEUED` lines wait, new records are
    dropped and counted, and a warning says how many once the writer catches up.
    :meth:`flush` waits until everything queued so far is written; :meth:`close` (also
    called by :func:`logging.shutdown` at exit) writes what is queued and stops the thread.
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

    def flush(self) -> None:
        """Wait until the records queued so far are written (at most :data:`FLUSH_TIMEOUT` s)."""
        if self._thread.is_alive():
            written = threading.Event()
            self._records.put(written)
            written.wait(FLUSH_TIMEOUT)

    def close(self) -> None:
        with self.lock or contextlib.nullcontext():
            closing, self._closed = not self._closed, True
        if closing and self._thread.is_alive():
            self._records.put(_STOP)
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
