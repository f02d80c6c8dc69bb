"""What request caching buys: a cache HIT against running a 50 ms handler, over HTTP.

Each server (uvicorn, one process) serves this module's FrameX app with caching on, in
``memory`` or ``file`` mode. Both routes run the same handler, which awaits
``asyncio.sleep(ms / 1000)`` (an I/O-bound handler, such as a call to another service):

- ``handler``: ``GET /api/v1/cache_bench/handler?ms=50``, no cache options: the handler
  runs for every request;
- ``hit``: ``GET /api/v1/cache_bench/cached?ms=50``, ``cache={}``: after the first
  request (checked to be a MISS, then a HIT), every request is a hit.

A load generator in its own process drives one route of one server at a time, closed
loop, at each ``--concurrency``; ``--runs`` rounds, medians reported. The speed-up is
hit req/s over handler req/s (and handler p50 over hit p50). Servers, load generators,
disturbance checks and reports are those of ``bench.common`` and ``bench.http_local``.

Run from the repository root::

    python -m bench.cache            # full run, about 2 minutes
    python -m bench.cache --quick    # smoke run, under a minute

The table goes to stdout, progress to stderr, everything to ``bench/results/cache.json``.

This module is also the benchmark's plugin and holds its two apps
(``bench.cache:app_memory`` and ``bench.cache:app_file``), built when uvicorn asks for them.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import http.client
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    HOST,
    OTHER_LOAD_LIMIT,
    RESULTS,
    Measure,
    Point,
    add_load_options,
    add_server_options,
    apply_profile,
    check_load_options,
    command_line,
    machine,
    measure_point,
    measurement_notes,
    num,
    pick_loadgen,
    print_results,
    run_cli,
    source_state,
    timestamp,
    versions,
    write_report,
)
from bench.http_local import AppSpec, Server, ServerOptions, resolved_server_stack, running
from framex.plugin import PluginMetadata, on_request

__plugin_meta__ = PluginMetadata(name="cache")  # a plugin is named after its module

DEFAULT_OUTPUT = RESULTS / "cache.json"
HANDLER = "/api/v1/cache_bench/handler"
CACHED = "/api/v1/cache_bench/cached"

FULL = {"duration": 3.0, "warmup": 1.0, "runs": 3, "concurrency": [1, 16]}
QUICK = {"duration": 1.0, "warmup": 0.3, "runs": 1, "concurrency": [8]}

APPS = (
    AppSpec("memory", "memory", "bench.cache:app_memory", lambda body: body["data"]),
    AppSpec("file", "file", "bench.cache:app_file", lambda body: body["data"]),
)


# -- the plugin and the apps (in the server processes) ------------------------------


@on_request("/cache_bench/handler")
async def handler(ms: int = 50) -> dict[str, int]:
    """Takes ``ms`` milliseconds, every time."""
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


@on_request("/cache_bench/cached", cache={})
async def cached(ms: int = 50) -> dict[str, int]:
    """The same handler, cached with the configured ttl."""
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


@functools.cache
def build_app(mode: str) -> Any:
    """The FrameX app serving this module with ``cache: {enabled: true, mode: <mode>}``."""
    import framex

    # The server's working directory is the benchmark's temporary folder: file entries go there.
    container = framex.create_container(
        None,
        load_plugins=["bench.cache"],
        load_builtin_plugins=[],
        cache={"enabled": True, "mode": mode, "ttl": -1, "file_dir": ".framex-cache"},
    )
    framex.use_container(container)
    return framex.create_app(container)


def __getattr__(name: str) -> Any:
    # uvicorn imports `bench.cache:app_memory`: build only the app asked for.
    if name == "app_memory":
        return build_app("memory")
    if name == "app_file":
        return build_app("file")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- measuring ----------------------------------------------------------------------


def cache_status(port: int, path: str) -> tuple[int, str | None]:
    """One GET: its status and ``X-FrameX-Cache-Status``."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("X-FrameX-Cache-Status")
    finally:
        conn.close()


def check(server: Server, ms: int) -> None:
    """The handler route is not cached; the cached route misses once, then hits."""
    seen = [
        cache_status(server.port, f"{HANDLER}?ms={ms}"),
        cache_status(server.port, f"{CACHED}?ms={ms}"),
        cache_status(server.port, f"{CACHED}?ms={ms}"),
    ]
    if seen != [(200, None), (200, "MISS"), (200, "HIT")]:
        raise RuntimeError(f"{server.spec.label}: unexpected (status, cache status) answers {seen}")


def render(points: list[Point]) -> str:
    """One row per app and concurrency: both scenarios' medians and the speed-up."""
    lines = [
        "| cache mode | concurrency | handler req/s | hit req/s | speed-up | handler p50 ms | hit p50 ms "
        "| hit p99 ms | hit server µs/request |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    by_key = {(p.scenario, p.concurrency): p for p in points}
    for spec in APPS:
        for level in sorted({p.concurrency for p in points}):
            slow, fast = by_key[("handler", level)], by_key[("hit", level)]
            slow_rps, fast_rps = slow.median(spec.key, "rps"), fast.median(spec.key, "rps")
            speedup = fast_rps / slow_rps if fast_rps and slow_rps else None
            lines.append(
                f"| {spec.label} | {level} | {num(slow_rps, ',.0f')} | {num(fast_rps, ',.0f')} "
                f"| {num(speedup, ',.0f')}{'x' if speedup else ''} | {num(slow.median(spec.key, 'p50_ms'), '.2f')} "
                f"| {num(fast.median(spec.key, 'p50_ms'), '.2f')} | {num(fast.median(spec.key, 'p99_ms'), '.2f')} "
                f"| {num(fast.median(spec.key, 'server_us_per_request'), '.0f')} |"
            )
    return "\n".join(lines)


def point_dict(point: Point) -> dict[str, Any]:
    return {
        "scenario": point.scenario,
        "path": point.path,
        "concurrency": point.concurrency,
        "apps": {
            key: {
                "median_rps": point.median(key, "rps"),
                "median_p50_ms": point.median(key, "p50_ms"),
                "median_p99_ms": point.median(key, "p99_ms"),
                "median_server_us_per_request": point.median(key, "server_us_per_request"),
                "errors": point.errors(key),
                "runs": [r.to_dict() for r in results],
            }
            for key, results in point.runs.items()
        },
    }


def summarize(points: list[Point], args: argparse.Namespace) -> list[str]:
    notes = [
        f"the handler awaits {args.ms} ms, so one connection gets at most {1000 / args.ms:,.0f} req/s from it; "
        "a hit is bound by the server's CPU instead"
    ]
    notes += measurement_notes(points, args.retries)
    return notes


def measure_all(points: list[Point], server: Server, measure: Measure, args: argparse.Namespace) -> None:
    """``--runs`` rounds; each measures every point, the handler and hit routes alternating."""
    for run in range(args.runs):
        for point in points:
            note = f"run {run + 1}/{args.runs}"
            measure_point(measure, server.target, point, server.spec.key, server.spec.label, note, args)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cache", description="A request-cache HIT against running a 50 ms handler."
    )
    add_load_options(parser, FULL, DEFAULT_OUTPUT)
    parser.add_argument("--concurrency", type=int, nargs="+", help=f"connections {FULL['concurrency']}")
    parser.add_argument("--ms", type=int, default=50, help="how long the handler takes, ms (50)")
    add_server_options(parser, pool=False)
    args = parser.parse_args(argv)
    apply_profile(args, QUICK if args.quick else FULL)
    check_load_options(parser, args, args.concurrency)
    if args.ms < 1:
        parser.error("need --ms >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every measurement, print the table, write the JSON file."""
    args = parse_args(argv)
    loadgen, measure = pick_loadgen(args.loadgen)
    points = [
        Point(scenario, f"{path}?ms={args.ms}", level)
        for level in args.concurrency
        for scenario, path in (("handler", HANDLER), ("hit", CACHED))
    ]
    options = ServerOptions(max_workers=8, loop=args.loop, http=args.http)
    stack = resolved_server_stack(args.loop, args.http)
    print(
        f"load generator: {'wrk' if loadgen == 'wrk' else 'python (bench/loadgen.py)'}; uvicorn loop={stack['loop']} "
        f"http={stack['http']}; handler {args.ms} ms; {args.runs} run(s) x {args.duration:g} s "
        f"(+{args.warmup:g} s warm-up) per mode, route and concurrency",
        file=sys.stderr,
    )
    started = time.time()
    for spec in APPS:  # one server at a time: the other would compete for the CPU
        with tempfile.TemporaryDirectory(prefix="framex-bench-cache-") as tmp:
            with running(spec, options, Path(tmp), f"{HANDLER}?ms=1") as server:
                check(server, args.ms)
                measure_all(points, server, measure, args)
            if spec.key == "file":
                entries = [name for name in os.listdir(Path(tmp) / ".framex-cache") if not name.startswith(".")]
                print(f"  file mode left {len(entries)} entry file(s)", file=sys.stderr)

    table = render(points)
    notes = summarize(points, args)
    print_results(table, notes=notes)
    report = {
        "command": command_line("bench.cache", argv),
        "started": timestamp(started),
        "seconds": round(time.time() - started, 1),
        "settings": {
            "duration": args.duration,
            "warmup": args.warmup,
            "runs": args.runs,
            "handler_ms": args.ms,
            "retries": args.retries,
            "other_load_limit": OTHER_LOAD_LIMIT,
            "load_generator": loadgen,
            "uvicorn": {"loop": args.loop, "http": args.http, "resolved": stack, "workers": 1},
        },
        "machine": machine(),
        "source": source_state(),
        "versions": versions("framex", "fastapi", "starlette", "uvicorn", "pydantic", "uvloop", "httptools", "h11"),
        "notes": notes,
        "points": [point_dict(p) for p in points],
        "table": table,
    }
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    run_cli(main, "interrupted; the server was stopped")
