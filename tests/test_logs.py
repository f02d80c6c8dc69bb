"""framex/logs.py: the request id on records, the text and JSON formats, the queueing handler."""

from __future__ import annotations

import io
import json
import logging
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
