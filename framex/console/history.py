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
    """One interval of one sparkline: when it ended, how many observations, their p50 and p99 (seconds)."""

    time: float
    count: float
    p50: float | None
    p99: float | None


class History:
    """Latency per interval over the last ``minutes``, sampled every ``interval`` seconds."""

    def __init__(self, interval: float, minutes: float) -> None:
        self.interval = interval
        self.size = max(1, round(minutes * 60 / interval))
        """Intervals kept."""
        self._intervals: deque[tuple[float, dict[SeriesKey, Histogram]]] = deque()
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
        while len(self._intervals) > self.size:
            _, dropped = self._intervals.popleft()
            for key, delta in dropped.items():
                self._start[key] = delta.plus(self._start.get(key))

    def window(self, keys: Iterable[SeriesKey], current: Mapping[SeriesKey, Histogram]) -> Histogram | None:
        """The observations of ``keys`` since the window's start (all of them before the first sample)."""
        return combined(current[key].minus(self._start.get(key)) for key in keys if key in current)

    def points(self, keys: Iterable[SeriesKey]) -> list[Point]:
        """One :class:`Point` per interval kept, for the series ``keys`` together."""
        wanted = list(keys)
        points = []
        for time, changed in self._intervals:
            histogram = combined(changed.get(key) for key in wanted)
            if histogram is None:
                points.append(Point(time, 0.0, None, None))
            else:
                points.append(Point(time, histogram.total, histogram.quantile(0.5), histogram.quantile(0.99)))
        return points
