"""The last minutes of latency, for the console's sparklines and its windowed percentiles.

Every ``console.interval_s`` the console hands :class:`History` the latency histograms it
read from the registry. History keeps, per interval, only what changed (the observations
of the series that were used), and the cumulative histograms at the start of the window:
what an interval falling out of the window held is added to that start. So memory grows
with the series in use, not with the traffic, and the window's percentiles are the
current histograms minus the start.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from framex.console.figures import Histogram, combined

SeriesKey = tuple[str, str, str]
"""``("http", method, route)`` or ``("remote", function, backend)``."""


@dataclass(frozen=True)
class Point:
    """One interval of one sparkline: how many observations, their p50 and p99 in milliseconds
    (to the microsecond, as the JSON shows them: computed once, when the interval is sampled)."""

    count: int
    p50_ms: float | None
    p99_ms: float | None


IDLE = Point(0, None, None)
"""An interval without observations."""


class History:
    """Latency per interval over the last ``minutes``, sampled every ``interval`` seconds."""

    def __init__(self, interval: float, minutes: float) -> None:
        self.interval = interval
        self.size = max(1, round(minutes * 60 / interval))
        """Intervals kept."""
        self._intervals: deque[tuple[float, dict[SeriesKey, Histogram]]] = deque()
        self._points: deque[dict[SeriesKey, Point]] = deque()
        """Per interval, the point of each series used in it: computed once, read by every document."""
        self._start: dict[SeriesKey, Histogram] = {}
        self._last: dict[SeriesKey, Histogram] = {}
        """The histograms of the last sample; none before the first (they start at zero)."""
        self.last_time = -math.inf
        """When the last sample was taken (``time.monotonic``), -inf before the first."""

    def __len__(self) -> int:
        """Intervals recorded so far (up to :attr:`size`)."""
        return len(self._intervals)

    def times(self) -> list[float]:
        """When each interval kept ended (``time.monotonic``), oldest first."""
        return [time for time, _ in self._intervals]

    def due(self, now: float) -> bool:
        """Whether a sample is due at ``now``."""
        return now - self.last_time >= self.interval

    def add(self, now: float, current: Mapping[SeriesKey, Histogram]) -> None:
        """Record the cumulative histograms read at ``now``: the observations since the last sample
        (since the start of the process, for the first) make one interval."""
        last = self._last
        self._last = dict(current)
        self.last_time = now
        changed: dict[SeriesKey, Histogram] = {}
        for key, histogram in current.items():
            delta = histogram.minus(last.get(key))
            if delta.total > 0:
                changed[key] = delta
        self._intervals.append((now, changed))
        self._points.append({key: _point(delta) for key, delta in changed.items()})
        while len(self._intervals) > self.size:
            _, dropped = self._intervals.popleft()
            self._points.popleft()
            for key, delta in dropped.items():
                self._start[key] = delta.plus(self._start.get(key))

    def window(self, keys: Iterable[SeriesKey], current: Mapping[SeriesKey, Histogram]) -> Histogram | None:
        """The observations of ``keys`` since the window's start (all of them before the first sample)."""
        return combined(current[key].minus(self._start.get(key)) for key in keys if key in current)

    def points(self, keys: Iterable[SeriesKey]) -> list[Point]:
        """One :class:`Point` per interval kept (as :meth:`times`), for the series ``keys`` together."""
        wanted = list(keys)
        if len(wanted) == 1:  # one series (an API with one method): the points made when sampling
            key = wanted[0]
            return [known.get(key, IDLE) for known in self._points]
        points = []
        for _, changed in self._intervals:
            histogram = combined(changed.get(key) for key in wanted)
            points.append(_point(histogram) if histogram is not None else IDLE)
        return points


def _point(histogram: Histogram) -> Point:
    return Point(int(histogram.total), to_ms(histogram.quantile(0.5)), to_ms(histogram.quantile(0.99)))


def to_ms(seconds: float | None) -> float | None:
    """Seconds as milliseconds to the microsecond (None stays None)."""
    return round(seconds * 1000, 3) if seconds is not None else None
