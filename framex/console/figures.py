"""The console's figures, read from the service's Prometheus registry: the numbers ``/metrics``
serves, no second count.

A :class:`Reading` is one pass over the registry's series (what a scrape collects):
requests by route and status, their latency histograms, ``@remote`` calls by outcome and
theirs, the in-flight gauge and a few process series. Percentiles are estimated from the
histogram buckets the way Prometheus' ``histogram_quantile`` does: linearly within the
bucket the rank falls in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.registry import Collector

Buckets = tuple[float, ...]
"""Cumulative counts of one histogram, one per upper bound (the last is ``+Inf``)."""

HTTP_REQUESTS = "framex_http_requests_total"
HTTP_DURATION = "framex_http_request_duration_seconds"
HTTP_IN_FLIGHT = "framex_http_requests_in_flight"
REMOTE_CALLS = "framex_remote_calls_total"
REMOTE_DURATION = "framex_remote_call_duration_seconds"
LOOP_BLOCKED = "framex_event_loop_blocked_total"
_PROCESS = {
    "process_cpu_seconds_total": "cpu_seconds",
    "process_resident_memory_bytes": "resident_memory_bytes",
    "process_open_fds": "open_fds",
    "process_start_time_seconds": "start_time_seconds",
}


@dataclass
class Histogram:
    """One latency histogram: upper bounds in seconds (the last is ``inf``) and cumulative counts."""

    bounds: tuple[float, ...]
    counts: Buckets

    @property
    def total(self) -> float:
        return self.counts[-1] if self.counts else 0.0

    def minus(self, earlier: Histogram | None) -> Histogram:
        """The observations made since ``earlier`` (a reading of the same series)."""
        if earlier is None or earlier.bounds != self.bounds:
            return self
        return Histogram(self.bounds, tuple(a - b for a, b in zip(self.counts, earlier.counts, strict=True)))

    def plus(self, other: Histogram | None) -> Histogram:
        """Both histograms' observations together (the methods of one API, say)."""
        if other is None:
            return self
        if other.bounds != self.bounds:
            raise ValueError("histograms with different buckets cannot be added")
        return Histogram(self.bounds, tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)))

    def quantile(self, q: float) -> float | None:
        """The estimated ``q`` quantile in seconds, or None without observations.

        A rank in the ``+Inf`` bucket gives the largest finite bound, as Prometheus does.
        """
        total = self.total
        if total <= 0:
            return None
        rank = q * total
        lower, below = 0.0, 0.0
        for bound, cumulative in zip(self.bounds, self.counts, strict=True):
            if cumulative >= rank:
                if math.isinf(bound):
                    return lower
                inside = cumulative - below
                return lower + (bound - lower) * ((rank - below) / inside if inside > 0 else 1.0)
            lower, below = bound, cumulative
        return lower


@dataclass
class Reading:
    """The series the console shows, from one pass over the registry."""

    requests: dict[tuple[str, str, str], float] = field(default_factory=dict)
    """``(method, route, status)`` -> requests served."""
    request_latency: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    """``(method, route)`` -> time to serve."""
    calls: dict[tuple[str, str, str], float] = field(default_factory=dict)
    """``(function, backend, outcome)`` -> ``.remote()`` calls made."""
    call_latency: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    """``(function, backend)`` -> time the calls took."""
    in_flight: float | None = None
    """HTTP requests being served (service-wide)."""
    loop_blocked: float | None = None
    """Blocked-loop episodes noticed by the watchdog, when it runs."""
    process: dict[str, float] = field(default_factory=dict)
    """CPU seconds, resident memory, open files, start time of the serving process."""

    def routes(self) -> set[tuple[str, str]]:
        """Every ``(method, route)`` that has been requested."""
        return {(method, route) for method, route, _ in self.requests}

    def functions(self) -> set[str]:
        """Every ``@remote`` function (metrics label) that has been called."""
        return {function for function, _, _ in self.calls}


def read(registry: Collector) -> Reading:
    """Collect ``registry`` (a metrics scrape, without the text) into a :class:`Reading`."""
    reading = Reading()
    request_buckets: dict[tuple[str, str], dict[float, float]] = {}
    call_buckets: dict[tuple[str, str], dict[float, float]] = {}
    for family in registry.collect():
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if name == HTTP_REQUESTS:
                key3 = (labels.get("method", ""), labels.get("route", ""), labels.get("status", ""))
                reading.requests[key3] = reading.requests.get(key3, 0.0) + value
            elif name == HTTP_DURATION + "_bucket":
                _bucket(request_buckets, (labels.get("method", ""), labels.get("route", "")), labels, value)
            elif name == REMOTE_CALLS:
                key3 = (labels.get("function", ""), labels.get("backend", ""), labels.get("outcome", ""))
                reading.calls[key3] = reading.calls.get(key3, 0.0) + value
            elif name == REMOTE_DURATION + "_bucket":
                _bucket(call_buckets, (labels.get("function", ""), labels.get("backend", "")), labels, value)
            elif name == HTTP_IN_FLIGHT:
                reading.in_flight = (reading.in_flight or 0.0) + value
            elif name == LOOP_BLOCKED:
                reading.loop_blocked = value
            elif name in _PROCESS:
                reading.process[_PROCESS[name]] = value
    reading.request_latency = _histograms(request_buckets)
    reading.call_latency = _histograms(call_buckets)
    return reading


def _bucket(
    into: dict[tuple[str, str], dict[float, float]], key: tuple[str, str], labels: dict[str, str], value: float
) -> None:
    bound = float(labels.get("le", "+Inf"))
    series = into.setdefault(key, {})
    series[bound] = series.get(bound, 0.0) + value


def _histograms(buckets: dict[tuple[str, str], dict[float, float]]) -> dict[tuple[str, str], Histogram]:
    histograms = {}
    for key, series in buckets.items():
        bounds = tuple(sorted(series))
        histograms[key] = Histogram(bounds, tuple(series[b] for b in bounds))
    return histograms


def combined(histograms: Iterable[Histogram | None]) -> Histogram | None:
    """The sum of several histograms of the same buckets (None when there are none)."""
    total: Histogram | None = None
    for histogram in histograms:
        if histogram is not None:
            total = histogram if total is None else total.plus(histogram)
    return total
