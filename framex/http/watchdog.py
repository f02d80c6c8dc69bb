"""Noticing when something blocks the event loop that serves HTTP.

An ``async def`` handler that does blocking work (``time.sleep``, a synchronous HTTP
client, a long computation) stalls every other request of the process. The watchdog
finds such handlers without touching the request path: a daemon thread asks the loop
to run a no-op (``call_soon_threadsafe``) every ``threshold / 2`` and times the answer.
When an answer is later than the threshold, it reads the loop thread's stack
(``sys._current_frames()``) once for the blocking line, takes the route from the mark
the request pipeline put on the running task (:mod:`framex.http.marks`), logs one
warning on the ``framex.watchdog`` logger and counts the episode; when the loop answers
again it logs how long the loop was blocked (INFO).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import sys
import sysconfig
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

from starlette.routing import BaseRoute, Route

from framex.http.marks import RouteMarks

logger = logging.getLogger("framex.watchdog")

MIN_INTERVAL = 0.005
"""Seconds; the watchdog never pings more often than this, however small the threshold."""
STOP_TIMEOUT = 5.0
"""How long :meth:`LoopWatchdog.stop` waits for the thread."""
THREAD_NAME = "framex-watchdog"

_ASYNC_FLAGS = inspect.CO_COROUTINE | inspect.CO_ITERABLE_COROUTINE | inspect.CO_ASYNC_GENERATOR

_FRAMEX_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LIBRARY_DIRS = tuple(
    {
        os.path.join(os.path.abspath(p), "")
        for p in (
            *(sysconfig.get_paths().get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")),
            _FRAMEX_DIR,
        )
        if p
    }
)


@dataclass(frozen=True)
class BlockReport:
    """What the loop thread was doing when a blocked episode was noticed."""

    route: str | None
    """``GET /api/v1/x (plugin.api)`` style, or None when no request was found on the stack."""
    where: str | None
    """``file:line in function`` of the innermost frame outside the standard library,
    installed packages and FrameX (or of the innermost frame when all are)."""

    def describe(self) -> str:
        route = self.route or "unknown route"
        return f"{route} at {self.where}" if self.where else route


class LoopWatchdog:
    """Watches one event loop from a daemon thread; see the module docstring.

    :meth:`start` it on the loop's own thread (in a lifespan), :meth:`stop` it there
    too; it may be started again after a stop (an app served twice). ``marks`` names the
    route of a blocking request; ``blocked_events`` counts the episodes noticed so far.
    """

    def __init__(self, threshold_ms: int, marks: RouteMarks | None = None) -> None:
        if threshold_ms <= 0:
            raise ValueError("threshold_ms must be > 0")
        self.threshold_ms = threshold_ms
        self.blocked_events = 0
        """Blocked episodes noticed (one per episode, however long it lasts)."""
        self.blocked = False
        """Whether the loop is in a blocked episode right now."""
        self.pings = 0
        """Pings the loop has answered (on time or late)."""
        self.idle_lags = 0
        """Late answers while the loop was idle (the process waited for a CPU or the GIL): not counted as blocked."""
        self.last_report: BlockReport | None = None
        self.last_blocked_ms: float | None = None
        """How long the last finished episode lasted (from the late ping to the loop's answer)."""
        self.max_blocked_ms = 0.0
        self.blocked_seconds = 0.0
        """Total length of the finished episodes."""
        self.marks = marks or RouteMarks()
        self._routes: dict[CodeType, list[str]] = {}
        self._stopping = False
        self._stop_lock = threading.Lock()  # held until `stop`: the thread sleeps by trying to take it
        self._answered = 0
        self._pong_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread_id = 0
        self._idle_codes: frozenset[CodeType] = frozenset()
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------

    def start(self, routes: Iterable[BaseRoute] = ()) -> None:
        """Start watching the running loop (call this on the loop's thread).

        ``routes`` name a blocked endpoint that runs in a task no request marked.
        """
        if self.running:
            raise RuntimeError("this watchdog is running already")
        self._routes = _route_names(routes)
        self._stopping = False
        self._stop_lock = threading.Lock()
        self._stop_lock.acquire()
        self._answered = 0
        self._loop = asyncio.get_running_loop()
        self._loop_thread_id = threading.get_ident()
        self._idle_codes = _idle_codes(self._loop, sys._getframe())
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it (it wakes up at once); nothing when not started."""
        thread = self._thread
        if thread is None:
            return
        if not self._stopping:
            self._stopping = True
            self._stop_lock.release()
        if thread is not threading.current_thread():
            thread.join(STOP_TIMEOUT)
        self._thread = None
        self._loop = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> dict[str, Any]:
        """Numbers for metrics."""
        return {
            "threshold_ms": self.threshold_ms,
            "blocked_events": self.blocked_events,
            "blocked": self.blocked,
            "blocked_seconds": self.blocked_seconds,
            "max_blocked_ms": self.max_blocked_ms,
            "last_blocked_ms": self.last_blocked_ms,
            "last_route": self.last_report.route if self.last_report else None,
            "idle_lags": self.idle_lags,
            "pings": self.pings,
        }

    # -- the thread ------------------------------------------------------------------

    def _answer(self, seq: int) -> None:
        # Runs on the loop: as little as possible.
        self._pong_at = time.monotonic()
        self._answered = seq

    def _run(self) -> None:
        loop = self._loop
        if loop is None:
            return
        threshold = self.threshold_ms / 1000
        interval = max(threshold / 2, MIN_INTERVAL)
        seq = 0
        while True:
            # One wake-up per ping: send it, sleep `interval`, look whether it was answered.
            seq += 1
            sent = time.monotonic()
            try:
                loop.call_soon_threadsafe(self._answer, seq)
            except RuntimeError:  # the loop is closed
                return
            if self._sleep(interval):
                return
            if self._answered < seq and not self._await_late(loop, seq, sent, threshold, interval):
                return
            self.pings += 1

    def _sleep(self, seconds: float) -> bool:
        """Sleep ``seconds`` or until :meth:`stop`; True when stopping.

        A lock acquired with a timeout is the cheapest interruptible sleep (an Event's
        `wait` costs about twice the CPU per wake-up).
        """
        if self._stop_lock.acquire(True, seconds):
            self._stop_lock.release()  # leave it free: every later sleep returns at once
            return True
        return False

    def _await_late(
        self, loop: asyncio.AbstractEventLoop, seq: int, since: float, threshold: float, interval: float
    ) -> bool:
        """Wait for the answer to ping ``seq``, reporting a blocked episode meanwhile; False: stop watching."""
        report: BlockReport | None = None
        idle_lag = False
        try:
            while self._answered < seq:
                if self._stopping or not loop.is_running():
                    return False  # stopping, or the loop stopped without a shutdown: nothing is blocked
                if report is not None:
                    self._sleep(interval)
                    continue
                remaining = since + threshold - time.monotonic()
                if remaining > 0:
                    self._sleep(remaining)
                    continue
                report = self._inspect()
                if report is None:
                    # The loop thread waits in its selector: no code blocks the loop, the
                    # process waits for a CPU or for the GIL. Start the clock again.
                    since, idle_lag = time.monotonic(), True
                else:
                    self._blocked(report)
            if report is not None:
                self._recovered(report, (self._pong_at - since) * 1000)
            elif idle_lag:
                self.idle_lags += 1
                logger.debug("The event loop answered late while idle: the process waited for a CPU or the GIL.")
            return True
        finally:
            self.blocked = False

    def _blocked(self, report: BlockReport) -> None:
        self.blocked = True
        self.blocked_events += 1
        self.last_report = report
        logger.warning(
            "The event loop has been blocked for more than %d ms by %s; every request of this server waits "
            "meanwhile. Move the blocking work into a function decorated with @remote() and await "
            "`fn.remote(...)`, or make the handler a plain `def`.",
            self.threshold_ms,
            report.describe(),
        )

    def _recovered(self, report: BlockReport, blocked_ms: float) -> None:
        self.last_blocked_ms = blocked_ms
        self.max_blocked_ms = max(self.max_blocked_ms, blocked_ms)
        self.blocked_seconds += blocked_ms / 1000
        logger.info("The event loop was blocked for %.0f ms by %s.", blocked_ms, report.route or "unknown route")

    # -- reading the loop thread's stack -----------------------------------------------

    def _inspect(self) -> BlockReport | None:
        """What blocks the loop, or None when its thread is idle in the loop's selector."""
        if not _gil_enabled():
            # Without the GIL the loop thread keeps running while its frames are read.
            return BlockReport(None, None)
        try:
            frame = sys._current_frames().get(self._loop_thread_id)
        except Exception:  # pragma: no cover - defensive: never let the report kill the thread
            return BlockReport(None, None)
        if frame is None:
            return BlockReport(None, None)
        try:
            if frame.f_code in self._idle_codes:
                return None
            return BlockReport(self._route_of(frame), _where(_user_frame(frame)))
        except Exception:  # pragma: no cover - defensive, as above
            return BlockReport(None, None)
        finally:
            del frame

    def _route_of(self, innermost: FrameType) -> str | None:
        """The route of the request the loop is handling: the running task's mark, else the
        endpoint whose code is on the stack."""
        loop = self._loop
        route = self.marks.route_of(loop) if loop is not None else None
        if route is not None:
            return route
        frame: FrameType | None = innermost
        while frame is not None:
            names = self._routes.get(frame.f_code)
            if names is not None:
                return " | ".join(dict.fromkeys(names))
            frame = frame.f_back
        return None


def _idle_codes(loop: asyncio.AbstractEventLoop, here: FrameType | None) -> frozenset[CodeType]:
    """Where the loop's thread is while the loop waits for events.

    asyncio's loops wait in their selector's (or proactor's) ``select``. A loop written in
    C (uvloop) shows the innermost Python frame outside the running task: the one that
    runs the loop, found from ``here`` (a frame of a task on the loop).
    """
    codes: set[CodeType] = set()
    for waiter in (getattr(loop, "_selector", None), getattr(loop, "_proactor", None)):
        code = getattr(getattr(type(waiter), "select", None), "__code__", None)
        if waiter is not None and isinstance(code, CodeType):
            codes.add(code)
    if not codes:
        in_task = False
        frame = here
        while frame is not None:
            if frame.f_code.co_flags & _ASYNC_FLAGS:
                in_task = True
            elif in_task:
                codes.add(frame.f_code)
                break
            frame = frame.f_back
        del frame
    return frozenset(codes)


def _route_names(routes: Iterable[BaseRoute]) -> dict[CodeType, list[str]]:
    """The code object of each endpoint, with the routes it serves (``GET /path``)."""
    found: dict[CodeType, list[str]] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        code = getattr(inspect.unwrap(route.endpoint), "__code__", None)
        if isinstance(code, CodeType):
            methods = sorted(route.methods or ()) or ["*"]
            found.setdefault(code, []).extend(f"{m} {route.path}" for m in methods if m != "HEAD")
    return found


def _gil_enabled() -> bool:
    check = getattr(sys, "_is_gil_enabled", None)  # Python 3.13+
    return bool(check()) if check is not None else True


def _is_library(filename: str) -> bool:
    return filename.startswith("<") or os.path.abspath(filename).startswith(_LIBRARY_DIRS)


def _user_frame(innermost: FrameType) -> FrameType:
    frame: FrameType | None = innermost
    while frame is not None:
        if not _is_library(frame.f_code.co_filename):
            return frame
        frame = frame.f_back
    return innermost


def _where(frame: FrameType) -> str:
    filename = frame.f_code.co_filename
    with contextlib.suppress(ValueError):
        relative = os.path.relpath(filename)
        if not relative.startswith(os.pardir):
            filename = relative
    return f"{filename}:{frame.f_lineno} in {frame.f_code.co_name}"


def watchdog_for(threshold_ms: int, marks: RouteMarks) -> LoopWatchdog | None:
    """The watchdog of a service (not started), or None when ``threshold_ms`` is 0 (off)."""
    return LoopWatchdog(threshold_ms, marks) if threshold_ms > 0 else None
