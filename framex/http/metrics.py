"""Prometheus metrics of one app (``metrics`` section): HTTP requests, ``@remote`` calls,
blocked-loop episodes.

Every app has a registry of its own, so several apps in one process (tests, embedding)
never share or clash over series. Requests and calls are counted in plain ints and
lists, on the event loop's thread (the middleware and ``.remote()`` run there, and so
does the scrape): per request that is a dict lookup, two additions and a bisection,
where ``prometheus_client``'s metric objects would take locks and check arguments. A
collector turns the numbers into series when ``/metrics`` is scraped, and reads the
in-flight count and the watchdog's counters then.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from framex.errors import RemoteTimeoutError
from framex.http.shared_metrics import MetricsFile

if TYPE_CHECKING:
    from framex.http.watchdog import LoopWatchdog
    from framex.remote import RemoteFunction

UNMATCHED = "<unmatched>"
"""The ``route`` label of requests no route matched (404s)."""
OUTCOMES = ("success", "error", "timeout")
"""The ``outcome`` label of ``framex_remote_calls_total``."""
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds in seconds; from a cached answer (about 1 ms) to a long @remote job."""
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})
_BOUNDS = [str(b) for b in BUCKETS] + ["+Inf"]
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
"""Upper bounds of the ``framex_remote_batch_size`` histogram (items per batch)."""
_BATCH_BOUNDS = [str(b) for b in BATCH_SIZES] + ["+Inf"]


class _Histogram:
    """Observations per bucket (not cumulative: the scrape adds them up) and their sum."""

    __slots__ = ("bounds", "counts", "labels", "sum")

    def __init__(self, bounds: tuple[float, ...] = BUCKETS, labels: list[str] = _BOUNDS) -> None:
        self.bounds = bounds
        self.labels = labels
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        total, cumulative = 0, []
        for bound, count in zip(self.labels, self.counts, strict=True):
            total += count
            cumulative.append((bound, float(total)))
        return cumulative


class _Requests:
    __slots__ = ("count", "duration")

    def __init__(self, duration: _Histogram) -> None:
        self.count = 0
        self.duration = duration


class _Calls:
    __slots__ = ("duration", "labels", "outcomes")

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels
        self.outcomes = dict.fromkeys(OUTCOMES, 0)
        self.duration = _Histogram()


class Metrics:
    """The metrics of one app, the hooks that feed them, and their exposition."""

    def __init__(self, watchdog: LoopWatchdog | None = None, shared_dir: str | None = None) -> None:
        self.in_flight = 0
        """HTTP requests being served (updated by the middleware)."""
        self._requests: dict[tuple[str, str, int], _Requests] = {}
        self._durations: dict[tuple[str, str], _Histogram] = {}
        self._calls: dict[tuple[Any, str], _Calls] = {}
        self._batches: dict[tuple[Any, str], tuple[list[str], _Histogram, _Histogram]] = {}
        self.before_collect: Callable[[], None] | None = None
        """Called before the series are read (the HTTP middleware records finished requests)."""
        self.registry = CollectorRegistry()
        self._own = _Collector(self, watchdog)
        self.shared: MetricsFile | None = None
        """This worker's files when worker processes share their metrics (``shared_dir``), else None."""
        if shared_dir is None:
            self.registry.register(self._own)
            ProcessCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        else:
            # Every worker's series, summed; process and GC series would describe one worker only.
            self.shared = MetricsFile(shared_dir)
            self.registry.register(_Publisher(self))
            multiprocess_collector: Any = multiprocess.MultiProcessCollector  # untyped
            multiprocess_collector(self.registry, path=shared_dir)
        PlatformCollector(registry=self.registry)

    def close(self) -> None:
        """Release this worker's metrics files (when shared)."""
        if self.shared is not None:
            self.shared.close()

    def publish(self) -> None:
        """Write this worker's totals for the other workers' scrapes (when they share metrics)."""
        shared = self.shared
        if shared is not None:
            shared.write(self._own.collect())

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one HTTP request (``route`` is its route template)."""
        if method not in _METHODS:
            method = "OTHER"  # the label of methods nobody routes: clients choose them freely
        key = (method, route, status)
        entry = self._requests.get(key)
        if entry is None:
            duration = self._durations.setdefault((method, route), _Histogram())
            entry = self._requests[key] = _Requests(duration)
        entry.count += 1
        entry.duration.observe(seconds)

    def observe_call(
        self, fn: RemoteFunction[..., Any], backend: str, seconds: float, error: BaseException | None
    ) -> None:
        """Count one ``.remote()`` call (the container's ``call_observers``)."""
        key = (fn.func, backend)
        entry = self._calls.get(key)
        if entry is None:
            entry = self._calls[key] = _Calls([f"{fn.func.__module__}.{fn.func.__qualname__}", backend])
        if error is None:
            entry.outcomes["success"] += 1
        elif isinstance(error, RemoteTimeoutError):
            entry.outcomes["timeout"] += 1
        else:
            entry.outcomes["error"] += 1
        entry.duration.observe(seconds)

    def observe_batch(self, fn: RemoteFunction[..., Any], backend: str, size: int, waited: float) -> None:
        """Count one batch of a batched ``@remote`` function: its size, and how long its first call waited."""
        key = (fn.func, backend)
        entry = self._batches.get(key)
        if entry is None:
            labels = [f"{fn.func.__module__}.{fn.func.__qualname__}", backend]
            entry = self._batches[key] = (labels, _Histogram(BATCH_SIZES, _BATCH_BOUNDS), _Histogram())
        entry[1].observe(size)
        entry[2].observe(waited)

    def render(self) -> bytes:
        """The Prometheus text exposition of every series."""
        return generate_latest(self.registry)

    def families(self) -> Iterator[Metric]:
        """The HTTP and ``@remote`` series, from the numbers counted so far."""
        requests = CounterMetricFamily(
            "framex_http_requests", "HTTP requests served.", labels=["method", "route", "status"]
        )
        for (method, route, status), entry in list(self._requests.items()):
            requests.add_metric([method, route, str(status)], entry.count)
        durations = HistogramMetricFamily(
            "framex_http_request_duration_seconds",
            "Time from receiving a request to the end of its response.",
            labels=["method", "route"],
        )
        for (method, route), histogram in list(self._durations.items()):
            durations.add_metric([method, route], histogram.buckets(), histogram.sum)
        in_flight = GaugeMetricFamily("framex_http_requests_in_flight", "HTTP requests being served.", self.in_flight)
        calls = CounterMetricFamily(
            "framex_remote_calls", "@remote calls made, by outcome.", labels=["function", "backend", "outcome"]
        )
        call_durations = HistogramMetricFamily(
            "framex_remote_call_duration_seconds",
            "Time @remote calls took, as the caller awaited them (queueing, retries included).",
            labels=["function", "backend"],
        )
        for call in list(self._calls.values()):
            # Every outcome's series exists from the function's first call on.
            for outcome, count in call.outcomes.items():
                calls.add_metric([*call.labels, outcome], count)
            call_durations.add_metric(call.labels, call.duration.buckets(), call.duration.sum)
        sizes = HistogramMetricFamily(
            "framex_remote_batch_size", "Items per batch of batched @remote functions.", labels=["function", "backend"]
        )
        waits = HistogramMetricFamily(
            "framex_remote_batch_wait_seconds",
            "How long the first call of each batch waited for the batch to start.",
            labels=["function", "backend"],
        )
        for labels, size, wait in list(self._batches.values()):
            sizes.add_metric(labels, size.buckets(), size.sum)
            waits.add_metric(labels, wait.buckets(), wait.sum)
        yield from (requests, durations, in_flight, calls, call_durations, sizes, waits)


class _Collector(Collector):
    """Hands ``metrics``' series and the watchdog's counters to the registry at scrape time."""

    def __init__(self, metrics: Metrics, watchdog: LoopWatchdog | None) -> None:
        self._metrics = metrics
        self._watchdog = watchdog

    def collect(self) -> Iterable[Metric]:
        before = self._metrics.before_collect
        if before is not None and self._metrics.shared is None:
            before()
        yield from self._metrics.families()
        watchdog = self._watchdog
        if watchdog is not None:  # None: `server.loop_block_warn_ms: 0`
            yield CounterMetricFamily(
                "framex_event_loop_blocked",
                "Episodes in which the event loop was blocked past the watchdog's threshold.",
                watchdog.blocked_events,
            )
            yield CounterMetricFamily(
                "framex_event_loop_blocked_seconds",
                "Total length of the finished blocked episodes.",
                watchdog.blocked_seconds,
            )


class _Publisher(Collector):
    """Before the shared files are read, records what this worker has pending and writes it."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        before = self._metrics.before_collect
        if before is not None:
            before()  # the recording pass publishes at its end
        else:
            self._metrics.publish()
        return ()


def metrics_endpoint(metrics: Metrics) -> Any:
    """The route handler that serves ``metrics``."""

    async def serve_metrics(request: Request) -> Response:
        return Response(metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return serve_metrics


def metrics_for(enabled: bool, watchdog: LoopWatchdog | None, shared_dir: str | None = None) -> Metrics | None:
    """The metrics of a service, or None when ``metrics.enabled`` is off; ``shared_dir``:
    where worker processes share them (:mod:`framex.http.shared_metrics`)."""
    return Metrics(watchdog, shared_dir) if enabled else None
