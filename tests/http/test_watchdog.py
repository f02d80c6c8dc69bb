"""The event-loop watchdog: one warning per blocked episode, naming the route, nothing otherwise."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import framex
from framex.config import ServerSettings
from framex.container import Container, close_container
from framex.errors import ConfigError
from framex.http.watchdog import THREAD_NAME, LoopWatchdog
from tests.fixture_plugins import slowpoke
from tests.server import framex_server

SLOW = "/api/v1/slowpoke/slow"
FAST = "/api/v1/slowpoke/fast"
THRESHOLD_MS = slowpoke.WARN_MS

pytestmark = pytest.mark.usefixtures("frozen_gc")


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def watchdog_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == THREAD_NAME}


def warnings(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    """What the watchdog logged at ``level``."""
    return [r.getMessage() for r in caplog.records if r.name == "framex.watchdog" and r.levelno == level]


def settled(watchdog: LoopWatchdog) -> None:
    """Wait until the watchdog has seen the loop answer twice more: whatever blocked has been judged."""
    pings = watchdog.pings
    wait_until(lambda: watchdog.pings >= pings + 2 and not watchdog.blocked, what="two more pings")


@contextmanager
def serving(threshold_ms: int = THRESHOLD_MS, extend: Callable[[FastAPI], None] | None = None) -> Iterator[TestClient]:
    container = framex.create_container(
        None,
        load_plugins=["tests.fixture_plugins.slowpoke"],
        load_builtin_plugins=[],
        server__loop_block_warn_ms=threshold_ms,
    )
    try:
        app = framex.create_app(container)
        if extend is not None:
            extend(app)
        SERVICES[id(app)] = container
        with TestClient(app) as client:
            yield client
    finally:
        SERVICES.pop(id(app), None)
        close_container(container)


SERVICES: dict[int, Container] = {}
"""The container of each app `serving` serves, by the app's id."""


def watchdog_of(client: TestClient) -> LoopWatchdog:
    watchdog = SERVICES[id(client.app)].watchdog()
    assert isinstance(watchdog, LoopWatchdog)
    return watchdog


def test_blocking_handler_gets_one_warning_naming_its_route(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="framex.watchdog")
    with serving() as client:
        watchdog = watchdog_of(client)
        assert watchdog.running and watchdog.threshold_ms == THRESHOLD_MS
        settled(watchdog)
        assert watchdog.blocked_events == 0 and warnings(caplog) == []

        assert client.get(SLOW).json()["data"] == "done"
        wait_until(lambda: watchdog.blocked_events == 1, what="the blocked episode to be counted")
        settled(watchdog)

        [warning] = warnings(caplog)
        assert f"GET {SLOW} (slowpoke.slow)" in warning
        assert "slowpoke.py:" in warning and "in slow" in warning  # the line that blocks
        assert "@remote()" in warning
        assert watchdog.blocked_events == 1
        assert watchdog.last_report is not None and watchdog.last_report.route == f"GET {SLOW} (slowpoke.slow)"
        # The length is measured from the late ping: at most the whole sleep.
        assert watchdog.last_blocked_ms is not None
        assert THRESHOLD_MS <= watchdog.last_blocked_ms < 1000 * slowpoke.BLOCK_SECONDS + 500
        [recovered] = warnings(caplog, logging.INFO)
        assert recovered.startswith("The event loop was blocked for ") and SLOW in recovered

        for _ in range(20):
            assert client.get(FAST).json()["data"] == "quick"
        settled(watchdog)
        assert watchdog.blocked_events == 1 and len(warnings(caplog)) == 1
        assert watchdog.stats()["blocked_events"] == 1


def test_fast_requests_get_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="framex.watchdog")
    with serving() as client:
        watchdog = watchdog_of(client)
        for _ in range(50):
            assert client.get(FAST).status_code == 200
        settled(watchdog)
        assert watchdog.blocked_events == 0 and watchdog.pings >= 2
    assert warnings(caplog) == []


def test_a_stream_blocking_while_it_sends_is_named(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="framex.watchdog")
    with serving() as client:
        watchdog = watchdog_of(client)
        assert client.get("/api/v1/slowpoke/slow_stream").text == "data: 1\n\ndata: 2\n\n"
        wait_until(lambda: watchdog.blocked_events == 1, what="the blocked episode to be counted")
        settled(watchdog)
    [warning] = warnings(caplog)
    assert "/api/v1/slowpoke/slow_stream" in warning and "in slow_stream" in warning


def test_a_plain_fastapi_route_is_named_by_its_path(caplog: pytest.LogCaptureFixture) -> None:
    def extend(app: FastAPI) -> None:
        @app.get("/plain")
        async def plain() -> str:
            time.sleep(slowpoke.BLOCK_SECONDS)  # blocks the loop: what is under test
            return "plain"

    caplog.set_level(logging.WARNING, logger="framex.watchdog")
    with serving(extend=extend) as client:
        watchdog = watchdog_of(client)
        assert client.get("/plain").json() == "plain"
        wait_until(lambda: watchdog.blocked_events == 1, what="the blocked episode to be counted")
        settled(watchdog)
    [warning] = warnings(caplog)
    assert "by GET /plain at " in warning and "in plain" in warning


def test_zero_turns_the_watchdog_off() -> None:
    before = watchdog_threads()
    with serving(threshold_ms=0) as client:
        assert SERVICES[id(client.app)].watchdog() is None
        assert client.get(FAST).status_code == 200
        assert watchdog_threads() == before  # no thread started


def test_the_thread_is_a_daemon_and_stops_with_the_app(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="framex.watchdog")
    before = watchdog_threads()
    with serving() as client:
        watchdog = watchdog_of(client)
        [thread] = watchdog_threads() - before
        assert thread.daemon  # never keeps the process alive
        settled(watchdog)
    assert not thread.is_alive() and not watchdog.running
    assert watchdog_threads() == before
    assert warnings(caplog) == []  # stopping (which runs on the loop) is not a blocked loop


def test_apps_in_one_process_watch_their_own_loops(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="framex.watchdog")
    before = watchdog_threads()
    with serving() as first, serving() as second:
        one, two = watchdog_of(first), watchdog_of(second)
        assert one is not two and len(watchdog_threads() - before) == 2
        assert first.get(SLOW).status_code == 200
        wait_until(lambda: one.blocked_events == 1, what="the blocked episode to be counted")
        settled(one)
        settled(two)
        assert (one.blocked_events, two.blocked_events) == (1, 0)
        assert second.get(FAST).status_code == 200
    assert len(warnings(caplog)) == 1 and watchdog_threads() == before


def block_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # called on the loop's thread: blocks it, the behaviour under test


async def test_blocking_outside_any_request_names_the_code(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="framex.watchdog")
    watchdog = LoopWatchdog(THRESHOLD_MS)
    watchdog.start()
    try:
        block_the_loop(slowpoke.BLOCK_SECONDS)
        deadline = time.monotonic() + 10
        while watchdog.blocked or watchdog.blocked_events == 0:
            assert time.monotonic() < deadline, "the episode was never counted"
            await asyncio.sleep(0.005)
    finally:
        watchdog.stop()
    [warning] = warnings(caplog)
    assert "by unknown route at " in warning and "test_watchdog.py:" in warning and "in block_the_loop" in warning
    assert watchdog.blocked_events == 1 and not watchdog.running


def test_under_framex_run() -> None:
    # The real server: uvicorn (uvloop when installed), `framex run`'s logging set-up.
    args = ("--load-plugins", "tests.fixture_plugins.slowpoke", "--load-builtin-plugins", "echo")
    with framex_server(*args, env={"FRAMEX__SERVER__LOOP_BLOCK_WARN_MS": str(THRESHOLD_MS)}) as server:
        assert httpx.get(f"{server.url}{SLOW}", timeout=30).json()["data"] == "done"
        assert httpx.get(f"{server.url}{FAST}", timeout=30).json()["data"] == "quick"
        assert server.stop(signal.SIGTERM) == 0
        output = server.output()
    found = [line for line in output.splitlines() if line.startswith("WARNING framex.watchdog:")]
    assert len(found) == 1, output
    assert f"GET {SLOW} (slowpoke.slow)" in found[0] and "@remote()" in found[0]
    assert "INFO framex.watchdog: The event loop was blocked for" in output


def test_the_setting_is_validated() -> None:
    assert ServerSettings().loop_block_warn_ms == 100
    with pytest.raises(ConfigError, match=r"`server.loop_block_warn_ms`: Input should be greater than or equal to 0"):
        framex.create_container(None, server__loop_block_warn_ms=-1)
    with pytest.raises(ConfigError, match=r"`server.loop_block_warn_ms`"):
        framex.create_container(None, server__loop_block_warn_ms="soon")
    container = framex.create_container(None, server__loop_block_warn_ms=0)
    assert container.settings().server.loop_block_warn_ms == 0
    close_container(container)


def test_a_watchdog_needs_a_positive_threshold() -> None:
    with pytest.raises(ValueError, match="threshold_ms must be > 0"):
        LoopWatchdog(0)


def test_an_idle_loop_is_not_blocked() -> None:
    # A late answer while the loop thread sits in its selector means the process waited
    # for a CPU or the GIL, not that code blocked the loop: it is not reported.
    with serving() as client:
        watchdog = watchdog_of(client)
        wait_until(lambda: watchdog._inspect() is None, what="the loop to be seen idle")
