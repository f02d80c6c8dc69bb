"""Which requests are traced: FrameX's decision at the root of a trace, and the placeholder
span of a request that is not.

A request without a trace context (no ``traceparent``) starts a trace, and
``tracing.sample_ratio`` says whether it is recorded. FrameX draws that before anything
is made: an unsampled request gets an :class:`UnsampledRoot`, a span that records nothing
and makes its ids only when something reads them (a ``traceparent`` sent on to a worker
process, a Ray task or an upstream service, which then records nothing either). Spans
below a parent follow the parent (the SDK's ``ParentBased`` sampler), so one decision
holds for the whole trace.

Imported only when tracing is on: it needs the OpenTelemetry packages.
"""

from __future__ import annotations

from random import getrandbits, random

from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)


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
