"""Which request each task on the event loop is serving, for the loop watchdog.

The request pipeline marks what it is doing explicitly: the HTTP middleware marks each
request's task with its scope, a plugin route adds its API name to the scope
(:data:`API_SCOPE_KEY`), and a FrameX stream marks the task that sends it. When the loop
is blocked, the watchdog reads the mark of the task the loop is running
(``asyncio.current_task(loop)``), from its own thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

API_SCOPE_KEY = "framex.api"
"""The scope key under which a plugin route records the name of the API it runs."""


class RouteMarks:
    """The mark of every task serving a request: its ASGI scope, or a label."""

    __slots__ = ("_by_task",)

    def __init__(self) -> None:
        self._by_task: dict[asyncio.Task[Any], Mapping[str, Any] | str] = {}

    def mark(self, what: Mapping[str, Any] | str) -> tuple[asyncio.Task[Any] | None, Mapping[str, Any] | str | None]:
        """Mark the current task; hand the result to :meth:`unmark` when it is done."""
        task = asyncio.current_task()
        if task is None:
            return None, None
        previous = self._by_task.get(task)
        self._by_task[task] = what
        return task, previous

    def unmark(self, marked: tuple[asyncio.Task[Any] | None, Mapping[str, Any] | str | None]) -> None:
        """Put back what the task was marked with before :meth:`mark`."""
        task, previous = marked
        if task is None:
            return
        if previous is None:
            self._by_task.pop(task, None)
        else:
            self._by_task[task] = previous

    def route_of(self, loop: asyncio.AbstractEventLoop) -> str | None:
        """The route the loop's running task serves (``GET /path (api)``), or None when unmarked.

        Safe to call from another thread: it reads, and a task's mark is set and removed
        on the loop's own thread.
        """
        task = asyncio.current_task(loop)
        what = self._by_task.get(task) if task is not None else None
        if what is None or isinstance(what, str):
            return what
        route = f"{what.get('method')} {what.get('path')}"
        api = what.get(API_SCOPE_KEY)
        return f"{route} ({api})" if isinstance(api, str) else route

    def in_flight(self) -> dict[str, int]:
        """How many requests each plugin API is serving now, by API name (counted from the marks when asked)."""
        counts: dict[str, int] = {}
        for what in list(self._by_task.values()):
            if isinstance(what, str):
                continue  # a stream being sent: its request's task is marked too
            api = what.get(API_SCOPE_KEY)
            if isinstance(api, str):
                counts[api] = counts.get(api, 0) + 1
        return counts
