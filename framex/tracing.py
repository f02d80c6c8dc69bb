"""OpenTelemetry tracing of one service: its tracer, how spans start, end and fail, and
how a trace context travels with a call (W3C ``traceparent``).

The ``tracing`` provider of the container is a :class:`Tracing` when ``tracing.enabled``
is true and None otherwise; whoever makes spans gets it as an argument and checks for
None once. The OpenTelemetry packages are imported only when tracing is on (the
``tracing`` extra). No global tracer provider is set: two services in one process
export their own spans.

A span that fails gets the exception's type (status description and ``error.type``),
never its message: a 500's message is not meant for anyone outside the service.
"""

from __future__ import annotations

import multiprocessing.util
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, MutableMapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from framex.errors import FrameXError

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, SpanKind, Tracer

    from framex.config import TracingSettings

INSTALL_HINT = "pip install 'framex[tracing]'"

SAMPLED_SCOPE_KEY = "framex.sampled"
"""Set in an ASGI scope when the request's root sampling decision was drawn already: the decision."""

WORKER_EXPORT_DELAY_MS = 200
"""How long a worker process (a process-pool worker, a Ray worker) batches its spans
before sending them: such processes can be stopped without a chance to flush."""


def _otel() -> Any:
    """The OpenTelemetry modules FrameX uses, or a clear error naming the extra."""
    try:
        from opentelemetry import context, trace
        from opentelemetry.sdk import resources
        from opentelemetry.sdk import trace as sdk_trace
        from opentelemetry.sdk.trace import export, sampling
        from opentelemetry.trace.propagation import tracecontext
    except ImportError as exc:
        raise FrameXError(
            f"`tracing.enabled: true` needs the OpenTelemetry packages ({exc.name or exc} is missing). "
            f"Install them with `{INSTALL_HINT}`, or set `tracing.enabled: false`."
        ) from None
    return _Modules(context, trace, resources, sdk_trace, export, sampling, tracecontext)


class _Modules:
    __slots__ = ("context", "export", "resources", "sampling", "sdk_trace", "trace", "tracecontext")

    def __init__(self, *modules: Any) -> None:
        (
            self.context,
            self.trace,
            self.resources,
            self.sdk_trace,
            self.export,
            self.sampling,
            self.tracecontext,
        ) = modules


def _exporter(settings: TracingSettings) -> SpanExporter | None:
    if settings.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(service_name=settings.service_name)
    if settings.exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise FrameXError(
                "`tracing.exporter: otlp` needs the OTLP/HTTP exporter (opentelemetry-exporter-otlp-proto-http). "
                f"Install it with `{INSTALL_HINT}`, or pick `exporter: console` or `none`."
            ) from None
        return OTLPSpanExporter(endpoint=settings.endpoint)
    return None


class Tracing:
    """The tracer of one service and what it needs to make, carry and export spans.

    ``exporter`` replaces the configured one and exports each span as it ends (an
    in-memory exporter in tests); ``worker`` is for processes that run ``@remote`` work
    for a service (their spans are sent sooner, and at the process's exit).
    """

    def __init__(
        self, settings: TracingSettings, exporter: SpanExporter | None = None, *, worker: bool = False
    ) -> None:
        otel = _otel()
        self.settings = settings
        self._context = otel.context
        self._trace = otel.trace
        self.kinds = otel.trace.SpanKind
        self._status = otel.trace.Status
        self._error = otel.trace.StatusCode.ERROR
        self._propagator = otel.tracecontext.TraceContextTextMapPropagator()
        resource = otel.resources.Resource.create(
            {**settings.resource_attributes, "service.name": settings.service_name}
        )
        from framex import sampling

        # FrameX draws `sample_ratio` at the root of each trace (`start`) before anything
        # is made; the SDK only ever sees recorded roots, and children follow their parent.
        self._ratio = settings.sample_ratio
        self._draw = sampling.draw
        self._unsampled_root = sampling.UnsampledRoot
        self._context_var = sampling.context_variable()
        self._unsampled_context = sampling.unsampled_context
        self._span_key = sampling.CURRENT_SPAN_KEY
        # `unsampled_request` gives tokens of this variable only (another runtime context
        # takes the span's way, through the API).
        self.end_unsampled_request: Callable[[Any], Any] = (
            self._context_var.reset if self._context_var is not None else self._context.detach
        )
        sampler = otel.sampling.ParentBased(otel.sampling.ALWAYS_ON)
        self.provider: TracerProvider = otel.sdk_trace.TracerProvider(
            resource=resource, sampler=sampler, shutdown_on_exit=worker
        )
        if exporter is not None:
            self.provider.add_span_processor(otel.export.SimpleSpanProcessor(exporter))
        else:
            configured = _exporter(settings)
            if configured is not None:
                delay = {"schedule_delay_millis": WORKER_EXPORT_DELAY_MS} if worker else {}
                self.provider.add_span_processor(otel.export.BatchSpanProcessor(configured, **delay))
        if worker:
            # Pool workers leave through `os._exit`, past `atexit`: multiprocessing's own
            # exit hooks still run, so the last spans are sent there.
            multiprocessing.util.Finalize(self, self.provider.shutdown, exitpriority=10)
        self.tracer: Tracer = self.provider.get_tracer("framex")

    def start(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        kind: SpanKind | None = None,
        parent: Context | None = None,
        sampled: bool | None = None,
    ) -> Span:
        """A new span, child of ``parent`` (default: the current span); end it yourself.

        Without a parent span it starts a trace, recorded with probability ``sample_ratio``
        (``sampled`` gives the decision when it was drawn already): one that is not gets
        an :class:`~framex.sampling.UnsampledRoot`, which the SDK never sees.
        """
        root = not self._trace.get_current_span(parent).get_span_context().is_valid
        if root and not (self._draw(self._ratio) if sampled is None else sampled):
            return self._unsampled_root()
        return self.tracer.start_span(
            name, context=parent, kind=kind if kind is not None else self.kinds.INTERNAL, attributes=attributes
        )

    def unsampled_request(self, scope: MutableMapping[str, Any]) -> object | None:
        """For an ASGI request that starts a trace which is not recorded: its
        :class:`~framex.sampling.UnsampledRoot` made current, and nothing else to do (the
        token for :attr:`end_unsampled_request`). None: the request gets a span of its own
        (``framex.http.tracing.RequestSpan``), because it continues a trace (an incoming
        ``traceparent``), is recorded, or finds a trace context current already; the draw
        is left in ``scope[SAMPLED_SCOPE_KEY]`` for the span's :meth:`start`."""
        for name, _ in scope["headers"]:
            if name == b"traceparent":
                return None
        recorded = self._draw(self._ratio)
        var = self._context_var
        if not recorded and var is not None and not var.get():
            return var.set(self._unsampled_context())
        scope[SAMPLED_SCOPE_KEY] = recorded  # for the span's start: this draw stands
        return None

    def unsampled(self) -> bool:
        """Whether spans made now are not recorded: the current span is not."""
        var = self._context_var
        span: Any = var.get().get(self._span_key) if var is not None else self._trace.get_current_span()
        if type(span) is self._unsampled_root:
            return True
        if span is None:
            return False
        context = span.get_span_context()
        return context.is_valid and not context.trace_flags.sampled

    def span(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        kind: SpanKind | None = None,
        parent: Context | None = None,
    ) -> SpanScope | NoSpan:
        """``with tracing.span(...):`` a current span around a block; an exception marks it (type only).

        Inside a trace that is not sampled (``sample_ratio`` said no at its start), nothing
        is made: the trace context that travels on stays the unsampled one.
        """
        if parent is None and self.unsampled():
            return NO_SPAN  # (under a given parent the SDK's span carries that context on)
        return SpanScope(self, self.start(name, attributes, kind, parent))

    async def spanned(
        self, name: str, attributes: Mapping[str, Any] | None, work: Awaitable[Any], kind: SpanKind | None = None
    ) -> Any:
        """``await work`` inside a current span, as :meth:`span` makes it; when ``work``
        gives a stream (an async iterator: a streaming API, an upstream's SSE), the span
        lasts until the stream ends and is current while the stream produces each item."""
        scope = self.span(name, attributes, kind)
        if not isinstance(scope, SpanScope):
            return await work
        span = scope.span
        token = self.attach(span)
        try:
            result = await work
        except BaseException as exc:
            if not _cancelled(exc):
                self.fail(span, exc)
            span.end()
            raise
        finally:
            self.detach(token)
        if isinstance(result, AsyncIterator):
            return stream_in_span(self, span, result)
        span.end()
        return result

    def attach(self, span: Span) -> object:
        """Make ``span`` current in this context; undo with :meth:`detach`."""
        return self._context.attach(self._trace.set_span_in_context(span))

    def detach(self, token: object) -> None:
        self._context.detach(token)

    def fail(self, span: Span, error: BaseException | str) -> None:
        """Mark ``span`` failed with the exception's type (or ``error`` as given), never its message."""
        kind = error if isinstance(error, str) else type(error).__qualname__
        span.set_attribute("error.type", kind)
        span.set_status(self._status(self._error, kind))

    def inject(self, carrier: dict[str, str] | None = None) -> dict[str, str]:
        """The current trace context as W3C headers (``traceparent``, ``tracestate``)."""
        carrier = {} if carrier is None else carrier
        self._propagator.inject(carrier)
        return carrier

    def extract(self, carrier: Mapping[str, str] | None) -> Context | None:
        """The trace context in W3C headers, or None when they hold none."""
        if not carrier:
            return None
        context: Context = self._propagator.extract(carrier)
        return context

    def extract_headers(self, headers: Iterable[tuple[bytes, bytes]]) -> Context | None:
        """The trace context of ASGI request headers (``traceparent``), or None."""
        found: dict[str, str] | None = None
        for name, value in headers:
            if name == b"traceparent" or name == b"tracestate":
                if found is None:
                    found = {}
                found[name.decode("latin-1")] = value.decode("latin-1")
        if found is None:
            return None
        context: Context = self._propagator.extract(found)
        return context

    def flush(self, timeout_ms: int = 10_000) -> bool:
        """Send the spans waiting in the exporter's batch; True when all went."""
        return bool(self.provider.force_flush(timeout_ms))

    def shutdown(self) -> None:
        """Send what waits and stop the exporter (its thread and connections)."""
        self.provider.shutdown()


class SpanScope:
    """A span made current for a block: see :meth:`Tracing.span`."""

    __slots__ = ("_token", "span", "tracing")

    def __init__(self, tracing: Tracing, span: Span) -> None:
        self.tracing = tracing
        self.span = span
        self._token: object = None

    def __enter__(self) -> Span:
        self._token = self.tracing.attach(self.span)
        return self.span

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc is not None and not _cancelled(exc):
                self.tracing.fail(self.span, exc)
            self.span.end()
        finally:
            self.tracing.detach(self._token)


class NoSpan:
    """What :meth:`Tracing.span` gives in an unsampled trace: a block without a span of its own."""

    __slots__ = ()

    def __enter__(self) -> Span:
        from opentelemetry.trace import get_current_span

        return get_current_span()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


NO_SPAN = NoSpan()


async def stream_in_span(tracing: Tracing, span: Span, stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """``stream`` with ``span`` current while it produces (never in the reader's code between
    items); the span ends with the stream (exhausted, failed, or closed by its reader), which
    is closed then too."""
    try:
        while True:
            token = tracing.attach(span)
            try:
                item = await anext(stream)
            except StopAsyncIteration:
                return
            finally:
                tracing.detach(token)
            yield item
    except BaseException as exc:
        if not _cancelled(exc) and not isinstance(exc, GeneratorExit):
            tracing.fail(span, exc)
        raise
    finally:
        span.end()
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


def _cancelled(exc: BaseException) -> bool:
    # The caller went away (a timeout, a client gone): not the work's failure.
    return type(exc).__name__ == "CancelledError"


def tracing_for(settings: TracingSettings) -> Tracing | None:
    """The ``tracing`` provider's value: a :class:`Tracing`, or None when tracing is off."""
    return Tracing(settings) if settings.enabled else None


_worker_tracing: tuple[TracingSettings, Tracing] | None = None


def worker_tracing(settings: TracingSettings) -> Tracing:
    """The tracing of this worker process, made the first time a traced call arrives.

    A worker process serves one service (a pool's processes, a Ray job's workers), so
    it keeps one; other settings replace it.
    """
    global _worker_tracing
    current = _worker_tracing
    if current is not None and current[0] == settings:
        return current[1]
    if current is not None:
        current[1].shutdown()
    tracing = Tracing(settings, worker=True)
    _worker_tracing = (settings, tracing)
    return tracing


def active_tracing() -> Tracing | None:
    """The tracing of the active container (None when off), for code that has no container
    handed to it: built-in plugins, such as the proxy, reach it this way."""
    from framex.context import get_container

    tracing: Tracing | None = get_container().call_observers().tracing
    return tracing


def trace_headers(tracing: Tracing) -> list[tuple[bytes, bytes]]:
    """The current trace context as HTTP request headers (``traceparent``, ``tracestate``)."""
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in tracing.inject().items()]
