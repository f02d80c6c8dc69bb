"""Which requests are traced: FrameX's decision at the root of a trace, and the placeholder
span of a request that is not.

A request without a trace context (no ``traceparent``) starts a trace, and
``tracing.sample_ratio`` says whether it is recorded. FrameX draws that before anything
is made: an unsampled request gets an :class:`UnsampledRoot`, a span that records nothing
and makes its ids only when something reads them (a ``traceparent`` sent on to a worker
process, a Ray task or an upstream service, which then records nothing either). Spans
below a parent follow the parent (the SDK's ``ParentBased`` sampler), so one decision
holds for the whole trace.

Most requests of a service that samples are not recorded, so making such a request's
placeholder current is on the hot path: where no trace context is current yet, FrameX sets
OpenTelemetry's context variable to :func:`unsampled_context` itself (one ``ContextVar``
change, what ``attach`` would do through three calls).

Imported only when tracing is on: it needs the OpenTelemetry packages.
"""

from __future__ import annotations

from contextvars import ContextVar
from random import getrandbits, random

from opentelemetry import context as otel_context
from opentelemetry.context.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation import _SPAN_KEY

_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)

CURRENT_SPAN_KEY = _SPAN_KEY
"""The key of the current span in an OpenTelemetry context (``get_current_span`` reads it)."""


def draw(ratio: float) -> bool:
    """Whether a new trace is recorded, with probability ``ratio``."""
    return ratio >= 1.0 or (ratio > 0.0 and random() < ratio)


class UnsampledRoot(NonRecordingSpan):
    """The span of a trace that is not recorded, made by FrameX instead of the SDK: its
    trace and span ids are drawn the first time something asks for them."""

    def __init__(self) -> None:  # the SDK's span context comes later (see get_span_context)
        self._made: SpanContext | None = None

    def get_span_context(self) -> SpanContext:
        """Its ids (random, not sampled), the same on every call."""
        context = self._made
        if context is None:
            context = self._made = SpanContext(
                trace_id=getrandbits(128) or 1, span_id=getrandbits(64) or 1, is_remote=False, trace_flags=_NOT_SAMPLED
            )
        return context

    def __repr__(self) -> str:
        return f"UnsampledRoot({self.get_span_context()!r})"


def context_variable() -> ContextVar[Context] | None:
    """The ``ContextVar`` that holds OpenTelemetry's current context, when its runtime
    context keeps one (its default); None for another runtime context (``OTEL_PYTHON_CONTEXT``)."""
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    return var if isinstance(runtime, ContextVarsRuntimeContext) and isinstance(var, ContextVar) else None


def unsampled_context() -> Context:
    """A context whose current span is a new :class:`UnsampledRoot`, as
    ``set_span_in_context(UnsampledRoot(), Context())`` makes it."""
    return Context({_SPAN_KEY: UnsampledRoot()})
