"""The cost of the event-loop watchdog: FrameX's trivial route with it on (100 ms) and off (0).

Two uvicorn processes serve the same FrameX app (``bench_plugin``, as in
``bench.http_local``) with the same flags; only ``server.loop_block_warn_ms`` differs. A
load generator in a third process drives one at a time, alternating between them (the
order flips every run), and the median of ``--runs`` measurements is reported. Servers,
load generators, disturbance checks and tables are those of ``bench.http_local`` and
``bench.common``.

Run from the repository root::

    python -m bench.watchdog            # full run, about 3 minutes
    python -m bench.watchdog --quick    # smoke run, a few seconds

The table goes to stdout, progress to stderr, everything to ``bench/results/watchdog.json``.

This module also holds the two apps (``bench.watchdog:app_on`` and ``bench.watchdog:app_off``),
built when uvicorn first asks for them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import (
    OTHER_LOAD_LIMIT,
    RESULTS,
    Measure,
    Point,
    add_load_options,
    add_server_options,
    apply_profile,
    check_load_options,
    command_line,
    http_get,
    machine,
    measure_point,
    measurement_notes,
    num,
    paired_note,
    paired_ratios,
    pick_loadgen,
    print_results,
    render_diagnostics,
    render_table,
    run_cli,
    source_state,
    timestamp,
    versions,
    write_report,
)
from bench.http_local import AppSpec, Server, ServerOptions, resolved_server_stack, running

DEFAULT_OUTPUT = RESULTS / "watchdog.json"
TARGET = 0.97
"""With the watchdog on, FrameX should serve at least this share of the requests/s it serves with it off."""
ON_MS = 100
TRIVIAL = "/api/v1/trivial"
STATS = "/bench/watchdog"
"""A route of these apps only: the watchdog's numbers, read before and after the measurements."""

FULL = {"duration": 5.0, "warmup": 1.0, "runs": 5, "concurrency": [1, 16, 64]}
QUICK = {"duration": 1.0, "warmup": 0.3, "runs": 1, "concurrency": [8]}

APPS = (
    AppSpec("on", "on", "bench.watchdog:app_on", lambda body: body["data"]),
    AppSpec("off", "off", "bench.watchdog:app_off", lambda body: body["data"]),
)
LABELS = [(spec.key, spec.label) for spec in APPS]


# -- the apps (in the server processes) ---------------------------------------------


@functools.cache
def build_app(threshold_ms: int) -> Any:
    """The ``bench.apps.framex_app`` app with ``server.loop_block_warn_ms`` set, plus ``GET /bench/watchdog``."""
    import framex

    container = framex.create_container(
        None,
        load_plugins=["bench.apps.bench_plugin"],
        load_builtin_plugins=[],
        local__max_workers=int(os.environ.get("BENCH_MAX_WORKERS", "32")),
        server__loop_block_warn_ms=threshold_ms,
    )
    framex.use_container(container)
    app = framex.create_app(container)

    # Added after the plugin routes, so the trivial route is matched as in the other benchmark.
    @app.get(STATS, include_in_schema=False)
    async def stats_route() -> dict[str, Any]:
        watchdog = container.watchdog()
        if watchdog is None:
            return {"running": False}
        return {
            "running": watchdog.running,
            "thread_cpu_s": watchdog_thread_cpu(),
            "at": time.monotonic(),
            **watchdog.stats(),
        }

    return app


def watchdog_thread_cpu() -> float | None:
    """CPU seconds the watchdog thread of this process has used (None where the OS does not say)."""
    from framex.http.watchdog import THREAD_NAME

    for thread in threading.enumerate():
        if thread.name == THREAD_NAME and thread.ident is not None:
            with contextlib.suppress(AttributeError, OSError):  # pthread_getcpuclockid: Unix only
                return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return None


def __getattr__(name: str) -> Any:
    # uvicorn imports `bench.watchdog:app_on`: build only the app asked for.
    if name == "app_on":
        return build_app(ON_MS)
    if name == "app_off":
        return build_app(0)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- measuring ----------------------------------------------------------------------


def watchdog_stats(server: Server) -> dict[str, Any]:
    status, body = http_get(server.port, STATS)
    if status != 200:
        raise RuntimeError(f"{server.spec.label} GET {STATS}: status {status}, body {body[:200]!r}")
    stats: dict[str, Any] = json.loads(body)
    return stats


def check(servers: dict[str, Server]) -> None:
    """The trivial route answers, and the watchdog runs in the `on` server only."""
    for server in servers.values():
        status, body = http_get(server.port, TRIVIAL)
        if status != 200 or server.spec.unwrap(json.loads(body)) != {"ok": True}:
            raise RuntimeError(f"{server.spec.label} GET {TRIVIAL}: status {status}, body {body[:200]!r}")
    on, off = watchdog_stats(servers["on"]), watchdog_stats(servers["off"])
    if not on["running"] or on["threshold_ms"] != ON_MS or off["running"]:
        raise RuntimeError(f"unexpected watchdog state: on {on}, off {off}")


def measure_all(points: list[Point], servers: dict[str, Server], measure: Measure, args: argparse.Namespace) -> None:
    """``--runs`` rounds per point; each round measures both servers, the order flipping every round."""
    for point in points:
        for run in range(args.runs):
            for spec in APPS if run % 2 == 0 else APPS[::-1]:
                target = servers[spec.key].target
                measure_point(measure, target, point, spec.key, spec.label, f"run {run + 1}/{args.runs}", args)


def summarize(
    points: list[Point], before: dict[str, Any], after: dict[str, Any], args: argparse.Namespace
) -> list[str]:
    notes: list[str] = []
    ratios = [r for p in points if (r := p.ratio("on", "off")) is not None]
    if ratios:
        verdict = "meets" if min(ratios) >= TARGET else "is BELOW"
        notes.append(f"lowest ratio on/off {min(ratios):.3f}x {verdict} the {TARGET}x target")
    notes += [note for p in points if (note := paired_note(p, "on", "off")) is not None]
    seconds = after["at"] - before["at"]
    cpu = (
        after["thread_cpu_s"] - before["thread_cpu_s"]
        if after["thread_cpu_s"] is not None and before["thread_cpu_s"] is not None
        else None
    )
    notes.append(
        f"watchdog of the `on` server over {seconds:.0f} s of measurements: {after['pings'] - before['pings']} "
        f"pings answered, {after['blocked_events'] - before['blocked_events']} blocked episode(s), "
        f"{after['idle_lags'] - before['idle_lags']} late answer(s) while idle; its thread used "
        f"{num(cpu, '.3f')} CPU s ({num(cpu / seconds * 100 if cpu is not None else None, '.3f')}% of a core)"
    )
    notes += measurement_notes(points, args.retries)
    return notes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.watchdog",
        description=f"FrameX's trivial route with the event-loop watchdog on ({ON_MS} ms) and off (0).",
    )
    add_load_options(parser, FULL, DEFAULT_OUTPUT)
    parser.add_argument("--concurrency", type=int, nargs="+", help=f"connections {FULL['concurrency']}")
    add_server_options(parser)
    args = parser.parse_args(argv)
    apply_profile(args, QUICK if args.quick else FULL)
    check_load_options(parser, args, args.concurrency)
    if args.max_workers < 1:
        parser.error("need --max-workers >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every measurement, print the tables, write the JSON file."""
    args = parse_args(argv)
    loadgen, measure = pick_loadgen(args.loadgen)
    points = [Point("trivial", TRIVIAL, c) for c in args.concurrency]
    options = ServerOptions(args.max_workers, args.loop, args.http)
    stack = resolved_server_stack(args.loop, args.http)
    print(
        f"load generator: {'wrk' if loadgen == 'wrk' else 'python (bench/loadgen.py)'}; uvicorn loop={stack['loop']} "
        f"http={stack['http']}; watchdog on ({ON_MS} ms) vs off (0); {args.runs} run(s) x {args.duration:g} s "
        f"(+{args.warmup:g} s warm-up) per server and point",
        file=sys.stderr,
    )
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="framex-bench-") as tmp, contextlib.ExitStack() as exits:
        servers = {spec.key: exits.enter_context(running(spec, options, Path(tmp), TRIVIAL)) for spec in APPS}
        check(servers)
        before = watchdog_stats(servers["on"])
        measure_all(points, servers, measure, args)
        after = watchdog_stats(servers["on"])

    table, diagnostics = render_table(points, LABELS), render_diagnostics(points, LABELS)
    notes = summarize(points, before, after, args)
    print_results(table, diagnostics, notes=notes)

    report = {
        "command": command_line("bench.watchdog", argv),
        "started": timestamp(started),
        "seconds": round(time.time() - started, 1),
        "settings": {
            "duration": args.duration,
            "warmup": args.warmup,
            "runs": args.runs,
            "max_workers": args.max_workers,
            "retries": args.retries,
            "other_load_limit": OTHER_LOAD_LIMIT,
            "watchdog_ms": {"on": ON_MS, "off": 0},
            "load_generator": loadgen,
            "uvicorn": {"loop": args.loop, "http": args.http, "resolved": stack, "workers": 1},
        },
        "machine": machine(),
        "source": source_state(),
        "versions": versions("framex", "fastapi", "starlette", "uvicorn", "pydantic", "uvloop", "httptools", "h11"),
        "notes": notes,
        "watchdog": {"before": before, "after": after},
        "points": [{**p.to_dict("on", "off"), "paired_ratios": paired_ratios(p, "on", "off")} for p in points],
        "table": table,
    }
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    run_cli(main, "interrupted; the servers were stopped")
