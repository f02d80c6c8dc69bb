"""The console of one service: the JSON document its page shows (``<console.path>/api/state``).

A provider of the container (``console``). It lists what is loaded (plugins, their APIs and
``@remote`` functions, see :mod:`framex.console.catalog`), reads the live figures from the
service's metrics registry when it is asked (:mod:`framex.console.figures`: the counters
``/metrics`` serves), the in-flight requests per API from the loop watchdog's marks, and the
backend's state (:mod:`framex.console.backend`). The only thing it keeps is the latency
history for the sparklines (:mod:`framex.console.history`), sampled every
``console.interval_s`` on the event loop, a timer started by the app's lifespan; nothing of
it is on the path of a request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from framex.console.backend import describe_backend
from framex.console.catalog import describe_api, describe_plugin, describe_remote, remote_functions
from framex.console.figures import Histogram, Reading, read
from framex.console.history import History, SeriesKey, to_ms
from framex.consts import VERSION

if TYPE_CHECKING:
    from framex.adapters.base import Adapter
    from framex.config import Settings
    from framex.http.marks import RouteMarks
    from framex.http.metrics import Metrics
    from framex.http.watchdog import LoopWatchdog
    from framex.plugin.loader import PluginApi
    from framex.plugin.registry import PluginRegistry


class Console:
    """What the console page shows about one service, and the latency history behind its sparklines.

    ``adapter`` is the container's adapter provider (called when asked: overrides apply);
    ``metrics`` None means metrics are off, and only the static parts are shown; ``marks``
    (the watchdog's, None when it is off) give the requests in flight per API.
    """

    def __init__(
        self,
        settings: Settings,
        registry: PluginRegistry,
        adapter: Callable[[], Adapter],
        metrics: Metrics | None,
        marks: RouteMarks | None,
    ) -> None:
        self.settings = settings
        self.path = settings.console.path
        self.registry = registry
        self.adapter = adapter
        self.metrics = metrics
        self.marks = marks
        self.history = History(settings.console.interval_s, settings.console.history_minutes)
        self.started = time.time()
        self._remotes: dict[str, list[dict[str, Any]]] | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- sampling ---------------------------------------------------------------------

    def start(self) -> None:
        """Sample now and every ``console.interval_s`` on the running loop (the app's lifespan calls it)."""
        if self.metrics is None or self._timer is not None:
            return
        self._tick()

    def stop(self) -> None:
        """Stop sampling."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self.sample()
        self._timer = asyncio.get_running_loop().call_later(self.history.interval, self._tick)

    def sample(self, reading: Reading | None = None) -> None:
        """Add the current latency histograms to the history (read from the registry unless given)."""
        if self.metrics is None:
            return
        if reading is None:
            reading = read(self.metrics.registry)
        self.history.add(time.monotonic(), _series(reading))

    # -- the document -------------------------------------------------------------------

    async def state(self) -> dict[str, Any]:
        """The console's JSON document (see docs/console.md for its fields)."""
        reading = read(self.metrics.registry) if self.metrics is not None else None
        now = time.monotonic()
        if reading is not None and self.history.due(now):
            self.sample(reading)  # an app served without its lifespan has no timer
        figures = _Figures(reading, self.history, self.marks.in_flight() if self.marks is not None else None)
        plugins: list[dict[str, Any]] = []
        listed_routes: set[tuple[str, str | None]] = set()
        listed_functions: set[str] = set()
        for plugin in self.registry.plugins.values():
            entry = describe_plugin(plugin)
            apis = [*plugin.apis, *(api for api in self.registry.external_apis if api.plugin == plugin.name)]
            entry["apis"] = [figures.api(api) for api in apis]
            listed_routes.update((method, api.path) for api in apis if api.is_http for method in api.spec.methods)
            remotes = self._remote_functions(plugin.name)
            # Functions called so far that the module scan did not find (made at run time, say).
            prefix = plugin.module.__name__ + "."
            known = {fn["name"] for fn in remotes}
            called = sorted(f for f in figures.functions() if f.startswith(prefix) and f not in known)
            remotes = [*remotes, *({"name": f, "qualname": f[len(prefix) :]} for f in called)]
            entry["remote_functions"] = [{**fn, "figures": figures.remote(fn["name"])} for fn in remotes]
            listed_functions.update(fn["name"] for fn in remotes)
            plugins.append(entry)
        return {
            "service": self._service(reading),
            "backend": await describe_backend(self.adapter()),
            "metrics": {
                "enabled": self.metrics is not None,
                "path": self.settings.metrics.path,
                "in_flight": _count(reading.in_flight) if reading is not None else None,
                "loop_blocked": _count(reading.loop_blocked) if reading is not None else None,
            },
            "history": {
                "interval_s": self.history.interval,
                "minutes": self.settings.console.history_minutes,
                "age_s": [round(max(0.0, now - t), 1) for t in self.history.times()],
            },
            "plugins": plugins,
            "routes": figures.other_routes(listed_routes),
            "other_remote_functions": [
                {"name": f, "qualname": f, "figures": figures.remote(f)}
                for f in sorted(figures.functions() - listed_functions)
            ],
        }

    def _service(self, reading: Reading | None) -> dict[str, Any]:
        process = reading.process if reading is not None else {}
        started = process.get("start_time_seconds", self.started)
        return {
            "name": self.settings.server.title,
            "framex_version": VERSION,
            "adapter": self.settings.adapter,
            "started": started,
            "uptime_s": max(0.0, time.time() - started),
            "process": {k: v for k, v in process.items() if k != "start_time_seconds"},
        }

    def _remote_functions(self, plugin: str) -> list[dict[str, Any]]:
        if self._remotes is None:
            # Plugins are fixed once the app is built: scan their modules once.
            plugins = self.registry.plugins.values()
            self._remotes = {p.name: [describe_remote(fn, kind) for fn, kind in remote_functions(p)] for p in plugins}
        return self._remotes.get(plugin, [])


def _series(reading: Reading) -> dict[SeriesKey, Histogram]:
    series: dict[SeriesKey, Histogram] = {("http", m, r): h for (m, r), h in reading.request_latency.items()}
    series.update({("remote", f, b): h for (f, b), h in reading.call_latency.items()})
    return series


class _Figures:
    """The figures of one document, from one reading of the registry."""

    def __init__(self, reading: Reading | None, history: History, in_flight: dict[str, int] | None):
        self.reading = reading
        self.history = history
        self.in_flight = in_flight
        self.current = _series(reading) if reading is not None else {}
        self._idle_columns: dict[str, list[Any]] | None = None
        self._status: dict[tuple[str, str], list[float]] = {}
        self._calls: dict[str, list[float]] = {}
        if reading is not None:
            for (method, route, status), count in reading.requests.items():
                totals = self._status.setdefault((method, route), [0.0, 0.0, 0.0])
                code = int(status) if status.isdigit() else 500
                totals[0] += count
                totals[1] += count if code >= 500 else 0.0
                totals[2] += count if 400 <= code < 500 else 0.0
            for (function, _, outcome), count in reading.calls.items():
                totals = self._calls.setdefault(function, [0.0, 0.0, 0.0])
                totals[0] += count
                totals[1] += count if outcome != "success" else 0.0
                totals[2] += count if outcome == "timeout" else 0.0

    def functions(self) -> set[str]:
        return set(self._calls)

    def api(self, api: PluginApi) -> dict[str, Any]:
        entry = describe_api(api)
        figures = None
        if self.reading is not None and api.is_http and api.path is not None:
            routes = [(method, api.path) for method in api.spec.methods]
            figures = self._http(routes)
            figures["in_flight"] = self.in_flight.get(api.name, 0) if self.in_flight is not None else None
        entry["figures"] = figures
        return entry

    def _http(self, routes: list[tuple[str, str]]) -> dict[str, Any]:
        requests = errors = client_errors = 0.0
        for route in routes:
            totals = self._status.get(route)
            if totals is not None:
                requests, errors, client_errors = requests + totals[0], errors + totals[1], client_errors + totals[2]
        keys = [("http", method, path) for method, path in routes]
        return {
            "requests": int(requests),
            "errors": int(errors),
            "client_errors": int(client_errors),
            **self._latency(keys),
        }

    def remote(self, function: str) -> dict[str, Any] | None:
        if self.reading is None:
            return None
        calls, errors, timeouts = self._calls.get(function, [0.0, 0.0, 0.0])
        keys = [key for key in self.current if key[0] == "remote" and key[1] == function]
        return {"calls": int(calls), "errors": int(errors), "timeouts": int(timeouts), **self._latency(keys)}

    def other_routes(self, listed: set[tuple[str, str | None]]) -> list[dict[str, Any]]:
        if self.reading is None:
            return []
        return [
            {"method": method, "route": route, "figures": self._http([(method, route)])}
            for method, route in sorted(self.reading.routes() - listed, key=lambda r: (r[1], r[0]))
        ]

    def _latency(self, keys: Iterable[SeriesKey]) -> dict[str, Any]:
        keys = list(keys)
        window = self.history.window(keys, self.current)
        if window is None or window.total <= 0:
            # Nothing observed in the window: no percentiles, every interval idle.
            return {"p50_ms": None, "p99_ms": None, "recent": self._idle()}
        points = self.history.points(keys)
        return {
            "p50_ms": to_ms(window.quantile(0.5)),
            "p99_ms": to_ms(window.quantile(0.99)),
            "recent": {
                "count": [p.count for p in points],
                "p50_ms": [p.p50_ms for p in points],
                "p99_ms": [p.p99_ms for p in points],
            },
        }

    def _idle(self) -> dict[str, list[Any]]:
        if self._idle_columns is None:
            intervals = len(self.history)
            self._idle_columns = {"count": [0] * intervals, "p50_ms": [None] * intervals, "p99_ms": [None] * intervals}
        return self._idle_columns


def _count(value: float | None) -> int | None:
    return int(value) if value is not None else None


def console_for(
    settings: Settings,
    registry: PluginRegistry,
    adapter: Callable[[], Adapter],
    metrics: Metrics | None,
    marks: RouteMarks,
    watchdog: LoopWatchdog | None,
) -> Console | None:
    """The console of a service, or None with ``console.enabled: false``.

    The marks are set only while the watchdog runs: without it, in-flight requests per API
    are not known.
    """
    if not settings.console.enabled:
        return None
    return Console(settings, registry, adapter, metrics, marks if watchdog is not None else None)
