"""framex/logs.py: the request id on records, the text and JSON formats, the queueing handler."""

from __future__ import annotations

import io
import json
import logging
import math
import re
from collections.abc import Iterator

import pytest

from framex.config import LogSettings
from framex.logs import (
    REQUEST_ID,
    JsonFormatter,
    QueueingHandler,
    RequestIdFilter,
    TextFormatter,
    configure_logging,
    current_request_id,
    formatter,
    sole_handler,
)


def record(msg: str = "hello %s", args: tuple[object, ...] = ("world",), **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("tests.logs", logging.WARNING, __file__, 1, msg, args, None)
    made.__dict__.update(extra)
    return made


@pytest.fixture
def request_id() -> Iterator[str]:
    token = REQUEST_ID.set("rid-1")
    yield "rid-1"
    REQUEST_ID.reset(token)


def test_the_filter_adds_the_current_request_id(request_id: str) -> None:
    inside = record()
    assert RequestIdFilter().filter(inside) and inside.request_id == "rid-1"  # type: ignore[attr-defined]
    explicit = record(request_id="given")
    RequestIdFilter().filter(explicit)
    assert explicit.request_id == "given"  # type: ignore[attr-defined]
    assert current_request_id() == "rid-1"


def test_the_filter_sets_none_outside_requests() -> None:
    outside = record()
    RequestIdFilter().filter(outside)
    assert outside.request_id is None  # type: ignore[attr-defined]


def test_text_format_shows_the_request_id_when_there_is_one() -> None:
    text = TextFormatter()
    assert text.format(record(request_id="abc")) == "WARNING tests.logs [abc]: hello world"
    assert text.format(record(request_id=None)) == "WARNING tests.logs: hello world"
    assert text.format(record()) == "WARNING tests.logs: hello world"


def test_json_format_is_one_object_with_the_extra_fields() -> None:
    try:
        raise ValueError("bad value")
    except ValueError as exc:
        info = (type(exc), exc, None)
        failing = logging.LogRecord("tests.logs", logging.ERROR, __file__, 1, "failed: %d", (3,), info)
    failing.__dict__.update(request_id="r-9", route="/api/v1/x/{id}", status=500, obj=object())
    line = JsonFormatter().format(failing)
    assert "\n" not in line
    doc = json.loads(line)
    assert list(doc)[:5] == ["time", "level", "logger", "message", "request_id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["time"])
    assert [doc[k] for k in ("level", "logger", "message", "request_id")] == ["ERROR", "tests.logs", "failed: 3", "r-9"]
    assert (doc["route"], doc["status"]) == ("/api/v1/x/{id}", 500)
    assert doc["obj"].startswith("<object object at")  # what JSON cannot hold is written as str()
    assert doc["exception"].endswith("ValueError: bad value")
    assert json.loads(JsonFormatter().format(record()))["request_id"] is None


def test_the_queueing_handler_writes_formatted_lines_in_order(request_id: str) -> None:
    stream = io.StringIO()
    handler = QueueingHandler(stream)
    handler.setFormatter(TextFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("tests.logs.queueing")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        items = ["a", "b"]
        logger.warning("items: %s", items)
        items.append("changed after the call")
        for n in range(100):
            logger.warning("line %d", n)
        handler.flush()
        lines = stream.getvalue().splitlines()
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        handler.close()
    assert lines[0] == "WARNING tests.logs.queueing [rid-1]: items: ['a', 'b']"  # formatted at the call
    assert lines[1:] == [f"WARNING tests.logs.queueing [rid-1]: line {n}" for n in range(100)]


def test_the_queueing_handler_drops_and_counts_what_does_not_fit() -> None:
    stream = io.StringIO()
    handler = QueueingHandler(stream, max_queued=0)
    handler.setFormatter(TextFormatter())
    for _ in range(3):
        handler.handle(record())
    handler.flush()
    assert handler.dropped == 3
    assert stream.getvalue() == "WARNING framex.logs: 3 log record(s) dropped: the log output did not keep up.\n"
    handler.close()
    handler.close()  # closing twice is harmless (logging.shutdown closes it again at exit)
    assert not handler._thread.is_alive()


def test_configure_logging_leaves_configured_logging_alone() -> None:
    # Under pytest the root logger has handlers (the capture), like a program that configured logging.
    assert logging.getLogger().handlers
    setup = configure_logging(LogSettings(level="debug"))
    assert setup.handler is None
    setup.close()


def test_configure_logging_installs_one_root_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    uvicorn_logger = logging.getLogger("uvicorn")
    monkeypatch.setattr(uvicorn_logger, "handlers", [logging.NullHandler()])
    monkeypatch.setattr(uvicorn_logger, "propagate", False)
    level = root.level
    stream = io.StringIO()
    setup = configure_logging(LogSettings(level="warning", format="json"), stream=stream)
    try:
        assert root.handlers == [setup.handler] and root.level == logging.WARNING
        assert uvicorn_logger.handlers == [] and uvicorn_logger.propagate
        logging.getLogger("uvicorn.error").warning("from uvicorn")
        logging.getLogger("plugins.x").info("below the level")
        assert setup.handler is not None
        setup.handler.flush()
    finally:
        setup.close()
        root.setLevel(level)
    assert root.handlers == []
    [line] = stream.getvalue().splitlines()
    assert json.loads(line)["message"] == "from uvicorn"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_formatted_fields_are_the_line_the_record_would_give(fmt: str) -> None:
    stream = io.StringIO()
    handler = QueueingHandler(stream)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(RequestIdFilter())
    fields = {"status": 200, "client": "10.0.0.1", "request_id": "r-1", "route": "/x/{id}"}
    made = logging.LogRecord("framex.access", logging.INFO, "", 0, "GET /x/{id} 200", (), None)
    made.__dict__.update(fields)
    handler.handle(made)
    lines = [
        handler.format_fields(logging.INFO, "framex.access", "GET /x/{id} 200", fields, created)
        for created in (made.created, made.created - 3600)
    ]
    handler.queue_lines([line for line in lines if line is not None])
    handler.flush()
    handler.close()
    from_record, direct, earlier = stream.getvalue().splitlines()
    if fmt == "text":
        assert from_record == direct == earlier == "INFO framex.access [r-1]: GET /x/{id} 200"
    else:
        first, second, third = json.loads(from_record), json.loads(direct), json.loads(earlier)
        assert first == second
        assert list(first) == ["time", "level", "logger", "message", "request_id", "client", "route", "status"]
        # The time given, not the time of writing.
        assert int(first["time"][11:13]) == (int(third["time"][11:13]) + 1) % 24


def test_sole_handler_is_the_queueing_handler_when_nothing_else_sees_the_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    only_a_queueing_handler = QueueingHandler(io.StringIO())
    only_a_queueing_handler.setFormatter(TextFormatter())
    only_a_queueing_handler.addFilter(RequestIdFilter())
    # The root logger as `framex run` sets it up (pytest's capture handlers set aside),
    # and the standard records (importing Ray, as other tests do, installs a factory).
    monkeypatch.setattr(logging.getLogger(), "handlers", [only_a_queueing_handler])
    factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    logger = logging.getLogger("tests.logs.sole")
    logger.setLevel(logging.INFO)
    try:
        assert sole_handler(logger, logging.INFO) is only_a_queueing_handler
        assert sole_handler(logger, logging.DEBUG) is None  # below the logger's level
        with monkeypatch.context() as m:
            m.setattr(logging.getLogger("tests"), "handlers", [logging.NullHandler()])
            assert sole_handler(logger, logging.INFO) is None  # another handler on the way
        with monkeypatch.context() as m:
            m.setattr(logger, "filters", [logging.Filter("other")])
            assert sole_handler(logger, logging.INFO) is None  # a logger filter
        with monkeypatch.context() as m:
            m.setattr(only_a_queueing_handler, "filters", [*only_a_queueing_handler.filters, logging.Filter()])
            assert sole_handler(logger, logging.INFO) is None  # a filter of someone else's on the handler
        with monkeypatch.context() as m:
            m.setattr(only_a_queueing_handler, "formatter", logging.Formatter())
            assert sole_handler(logger, logging.INFO) is None  # someone else's format
        with monkeypatch.context() as m:
            m.setattr(only_a_queueing_handler, "level", logging.WARNING)
            assert sole_handler(logger, logging.INFO) is None
        logging.setLogRecordFactory(lambda *args, **kwargs: logging.LogRecord(*args, **kwargs))
        assert sole_handler(logger, logging.INFO) is None  # records of a custom factory may differ
        logging.setLogRecordFactory(logging.LogRecord)
        with monkeypatch.context() as m:
            m.setattr(logger, "propagate", False)
            assert sole_handler(logger, logging.INFO) is None  # no handler at all
    finally:
        logging.setLogRecordFactory(factory)
        logger.setLevel(logging.NOTSET)
        only_a_queueing_handler.close()


def test_json_lines_are_what_json_dumps_writes() -> None:
    class Text(str):
        pass

    doc = {
        "text": 'é "quoted"\n\t\u2028',
        "int": -7,
        "big": 10**30,
        "float": 1.5e-7,
        "true": True,
        "false": False,
        "none": None,
        "nan": math.nan,
        "inf": -math.inf,
        "list": [1, "a", None],
        "dict": {"k": 1},
        "subclass": Text("x"),
        "bytes": b"x",
    }
    record = logging.LogRecord("tests.logs", logging.INFO, __file__, 1, "m", (), None)
    record.__dict__.update(doc)
    line = JsonFormatter().format(record)
    expected = json.dumps({k: doc[k] for k in sorted(doc)}, default=str)
    assert line.endswith(", " + expected[1:])  # after time, level, logger, message, request_id


FORGED = "x\r\nERROR framex.auth: FORGED\n\x1b[2K\u2028WARNING framex.proxy: forged too"


@pytest.mark.parametrize("logger_name", ["framex.proxy", "framex.http", "uvicorn.error", "plugins.someone"])
def test_text_lines_escape_control_characters_in_messages_and_arguments(
    monkeypatch: pytest.MonkeyPatch, logger_name: str
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    level = root.level
    stream = io.StringIO()
    setup = configure_logging(LogSettings(level="debug", format="text"), stream=stream)
    try:
        logger = logging.getLogger(logger_name)
        logger.warning("GET %s: refused", FORGED)  # in an argument
        logger.warning(FORGED)  # in the message itself
        assert setup.handler is not None
        line = setup.handler.format_fields(
            logging.INFO, "framex.access", f"GET {FORGED} 404", {"request_id": "r\n1"}, 0
        )
        assert line is not None
        setup.handler.queue_lines([line])
        setup.handler.flush()
    finally:
        setup.close()
        root.setLevel(level)
    escaped = r"x\r\nERROR framex.auth: FORGED\n\x1b[2K\u2028WARNING framex.proxy: forged too"
    assert stream.getvalue().splitlines() == [
        f"WARNING {logger_name}: GET {escaped}: refused",
        f"WARNING {logger_name}: {escaped}",
        rf"INFO framex.access [r\n1]: GET {escaped} 404",
    ]


def test_text_lines_keep_printable_text_and_tracebacks_as_they_are() -> None:
    text = TextFormatter()
    assert text.format(record("tab\there %s", ("é ü 字",))) == r"WARNING tests.logs: tab\there é ü 字"
    try:
        raise ValueError("bad")
    except ValueError as exc:
        failing = logging.LogRecord("tests.logs", logging.ERROR, __file__, 1, "a\nb", (), (type(exc), exc, None))
    first, *rest = text.format(failing).splitlines()
    assert first == r"ERROR tests.logs: a\nb"
    assert rest[-1] == "ValueError: bad"


def test_json_lines_escape_control_characters_already() -> None:
    line = JsonFormatter().format(record("GET %s", (FORGED,)))
    assert "\n" not in line and "\r" not in line and "\u2028" not in line
    assert json.loads(line)["message"] == f"GET {FORGED}"
