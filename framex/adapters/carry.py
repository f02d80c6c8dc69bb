"""What a ``@remote`` call carries to the process that runs it: the caller's request id and
trace context, and how that process logs and traces (its service's settings).

The caller's side makes a :class:`Carried` with :func:`carry` (None when there is
nothing to carry: no request, no tracing); the worker's side enters it with
:func:`entered` around the work. Threads need none of this: they run with the caller's
context variables.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

from framex.logs import REQUEST_ID

if TYPE_CHECKING:
    from framex.config import LogSettings, TracingSettings
    from framex.tracing import Tracing


class WorkerSetup(NamedTuple):
    """How a worker process logs and traces: its service's ``log`` and ``tracing`` settings."""

    log: LogSettings | None
    tracing: TracingSettings | None


class Carried(NamedTuple):
    """What travels with one call to another process."""

    request_id: str | None
    trace: dict[str, str] | None
    """W3C ``traceparent`` / ``tracestate`` of the caller's ``.remote()`` span."""
    setup: WorkerSetup
    executor: str
    """Where the work runs, for the work span: ``process`` or ``ray``."""


def carry(tracing: Tracing | None, setup: WorkerSetup, executor: str) -> Carried | None:
    """What a call made here carries along, or None when it needs nothing."""
    rid = REQUEST_ID.get()
    if tracing is None:
        return None if rid is None else Carried(rid, None, setup, executor)
    return Carried(rid, tracing.inject(), setup, executor)


_configured: WorkerSetup | None = None


def _set_up(setup: WorkerSetup) -> None:
    """Logging like the service's, once per worker process, when nothing configured it."""
    global _configured
    if _configured == setup:
        return
    _configured = setup
    if setup.log is not None and not logging.getLogger().handlers:
        from framex.logs import configure_logging

        configure_logging(setup.log)


@contextmanager
def entered(carried: Carried, label: str) -> Iterator[None]:
    """Run a block in the worker as the caller's request, inside a work span of its trace."""
    _set_up(carried.setup)
    token = REQUEST_ID.set(carried.request_id)
    try:
        settings = carried.setup.tracing
        if settings is None or carried.trace is None:
            yield
            return
        from framex.tracing import worker_tracing

        tracing = worker_tracing(settings)
        attributes: dict[str, Any] = {"framex.function": label, "framex.executor": carried.executor}
        if carried.request_id is not None:
            attributes["framex.request_id"] = carried.request_id
        with tracing.span(f"work {label}", attributes, parent=tracing.extract(carried.trace)):
            yield
    finally:
        REQUEST_ID.reset(token)
