"""The cost of FrameX's production features on the trivial route: all on against all off.

Two uvicorn processes serve the same FrameX app (``bench_plugin``, as in
``bench.http_local``) with the same flags. ``on`` has API-key auth on every
``/api/v1/*`` path (and ``/metrics``), Prometheus metrics, and one access-log line per
request, set up as ``framex run`` sets logging up (``framex.logs.configure_logging``:
a queue and a writer thread, into the server's log file). Both apps freeze the garbage
collector's view of the start-up objects, as ``framex run`` does. ``off`` has no auth rules,
metrics off, the access log off, and the same logging set-up. Both get the same request,
``Authorization`` header included. A load generator in a third process drives one at a
time, alternating (the order flips every run); medians of ``--runs`` are reported.

The runs are shared among ``--pairs`` pairs of servers started one after the other: two
processes of the same app differ by a few percent in speed (memory layout, hash seeds),
as much as the features cost, so one pair alone can tip the ratio either way.

Run from the repository root::

    python -m bench.production            # full run, about 4 minutes
    python -m bench.production --quick    # smoke run, a few seconds

The table goes to stdout, progress to stderr, everything to ``bench/results/production.json``.

This module also holds the two apps (``bench.production:app_on`` / ``app_off``), built
when uvicorn first asks for one. ``BENCH_LOG_FORMAT`` (text or json) sets the on app's
log format.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import json
import os
import re
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
    Target,
    add_load_options,
    add_server_options,
    apply_profile,
    check_load_options,
    command_line,
    machine,
    measure_point,
    measurement_notes,
    paired_note,
    pick_loadgen,
    print_results,
    render_diagnostics,
    render_table,
    run_cli,
    run_wrk,
    source_state,
    timestamp,
    versions,
    write_report,
)
from bench.http_local import AppSpec, Server, ServerOptions, resolved_server_stack, running
from bench.loadgen import LoadResult

DEFAULT_OUTPUT = RESULTS / "production.json"
TARGET = 0.9
"""With everything on, FrameX should serve at least this share of the requests/s it serves with everything off."""
TRIVIAL = "/api/v1/trivial"
READY = "/health"
"""Public in both apps: readiness is polled without a key."""
API_KEY = "bench-production-key-0123456789"
AUTH_HEADER = f"Bearer {API_KEY}"

FULL = {"duration": 3.0, "warmup": 1.0, "runs": 9, "pairs": 3, "concurrency": [1, 16, 64]}
"""Many short runs rather than a few long ones: on a machine whose speed drifts, one
disturbed run moves the median of nine less than the median of five."""
QUICK = {"duration": 1.0, "warmup": 0.3, "runs": 1, "pairs": 1, "concurrency": [8]}

APPS = (
    AppSpec("on", "on", "bench.production:app_on", lambda body: body["data"]),
    AppSpec("off", "off", "bench.production:app_off", lambda body: body["data"]),
)
LABELS = [(spec.key, spec.label) for spec in APPS]


# -- the apps (in the server processes) ---------------------------------------------


@functools.cache
def build_app(on: bool) -> Any:
    """The ``bench.apps.framex_app`` app with auth, metrics and the access log all on, or all off."""
    import framex
    from framex.logs import configure_logging

    settings: dict[str, Any] = {
        "metrics": {"enabled": on},
        "log": {"access_log": on, "format": os.environ.get("BENCH_LOG_FORMAT", "text")},
    }
    if on:
        # With the Python load generator (no headers) only /metrics is protected.
        protected = "/api/v1/*" if os.environ.get("BENCH_SEND_KEY") == "1" else "/api/v1/private/*"
        settings["auth"] = {"rules": {protected: [API_KEY], "/metrics": [API_KEY]}}
    container = framex.create_container(
        None,
        load_plugins=["bench.apps.bench_plugin"],
        load_builtin_plugins=[],
        local__max_workers=int(os.environ.get("BENCH_MAX_WORKERS", "32")),
        **settings,
    )
    framex.use_container(container)
    # As `framex run` does: the server's stdout and stderr go to its log file.
    configure_logging(container.settings().log)
    app = framex.create_app(container)
    app.state.framex_freeze_gc = True  # as `framex run` does: start-up objects out of full collections
    return app


def __getattr__(name: str) -> Any:
    # uvicorn imports `bench.production:app_on`: build only the app asked for.
    if name == "app_on":
        return build_app(True)
    if name == "app_off":
        return build_app(False)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- measuring ----------------------------------------------------------------------


def get(port: int, path: str, key: bool = True) -> tuple[int, bytes]:
    """One GET on a fresh connection, with the API key unless ``key`` is False."""
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", path, headers={"Authorization": AUTH_HEADER} if key else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wrk_with_key(target: Target, path: str, concurrency: int, duration: float, warmup: float) -> LoadResult:
    """``bench.common.run_wrk`` with the ``Authorization`` header on every request."""
    return run_wrk(target, path, concurrency, duration, warmup, headers=[f"Authorization: {AUTH_HEADER}"])


def check(servers: dict[str, Server], keyed: bool) -> None:
    """Both answer the trivial route; only `on` refuses it without a key and serves metrics."""
    for server in servers.values():
        status, body = get(server.port, TRIVIAL)
        if status != 200 or server.spec.unwrap(json.loads(body)) != {"ok": True}:
            raise RuntimeError(f"{server.spec.label} GET {TRIVIAL}: status {status}, body {body[:200]!r}")
    on, off = servers["on"].port, servers["off"].port
    expected = {
        "on without key": (get(on, TRIVIAL, key=False)[0], 401 if keyed else 200),
        "on /metrics": (get(on, "/metrics")[0], 200),
        "on /metrics without key": (get(on, "/metrics", key=False)[0], 401),
        "off /metrics": (get(off, "/metrics")[0], 404),
    }
    wrong = {name: got for name, (got, want) in expected.items() if got != want}
    if wrong:
        raise RuntimeError(f"unexpected statuses: {wrong} (expected {expected})")


def served_requests(port: int) -> float:
    """``framex_http_requests_total`` of the trivial route with status 200, from the on server's metrics."""
    status, body = get(port, "/metrics")
    if status != 200:
        raise RuntimeError(f"GET /metrics: status {status}")
    pattern = re.compile(rf'^framex_http_requests_total{{method="GET",route="{TRIVIAL}",status="200"}} (\S+)$', re.M)
    found = pattern.search(body.decode())
    return float(found.group(1)) if found else 0.0


def access_lines(log: Path) -> int:
    """``framex.access`` lines for the trivial route in a server's log file."""
    with log.open(errors="replace") as lines:
        return sum(1 for line in lines if "framex.access" in line and TRIVIAL in line)


def pair_runs(runs: int, pairs: int) -> list[range]:
    """The run numbers of each pair of servers: ``runs`` split as evenly as they go."""
    bounds = [round(runs * i / pairs) for i in range(pairs + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(pairs)]


def measure_all(
    points: list[Point], servers: dict[str, Server], measure: Measure, args: argparse.Namespace, runs: range
) -> None:
    """Rounds ``runs`` of every point; each round measures both servers, the order flipping every round."""
    for point in points:
        for run in runs:
            for spec in APPS if run % 2 == 0 else APPS[::-1]:
                target = servers[spec.key].target
                measure_point(measure, target, point, spec.key, spec.label, f"run {run + 1}/{args.runs}", args)


def summarize(points: list[Point], counted: dict[str, float], keyed: bool, args: argparse.Namespace) -> list[str]:
    notes: list[str] = []
    ratios = [r for p in points if (r := p.ratio("on", "off")) is not None]
    if ratios:
        verdict = "meets" if min(ratios) >= TARGET else "is BELOW"
        notes.append(f"lowest ratio on/off {min(ratios):.3f}x {verdict} the {TARGET}x target")
    notes += [note for p in points if (note := paired_note(p, "on", "off")) is not None]
    if not keyed:
        notes.append("the Python load generator sends no headers: auth guarded /metrics only, not the route")
    notes.append(
        f"on servers: {counted['metrics']:,.0f} trivial requests counted in their metrics, "
        f"{counted['lines']:,} access lines written to their logs (warm-ups and checks included)"
    )
    notes += measurement_notes(points, args.retries)
    return notes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.production",
        description="FrameX's trivial route with auth, metrics and access logs all on, against all off.",
    )
    add_load_options(parser, FULL, DEFAULT_OUTPUT)
    parser.add_argument("--concurrency", type=int, nargs="+", help=f"connections {FULL['concurrency']}")
    parser.add_argument(
        "--pairs", type=int, help=f"pairs of servers sharing the runs, one pair after the other ({FULL['pairs']})"
    )
    parser.add_argument("--log-format", choices=["text", "json"], default="text", help="the on server's log.format")
    add_server_options(parser)
    args = parser.parse_args(argv)
    apply_profile(args, QUICK if args.quick else FULL)
    check_load_options(parser, args, args.concurrency)
    if args.max_workers < 1:
        parser.error("need --max-workers >= 1")
    if not 1 <= args.pairs <= args.runs:
        parser.error("need 1 <= --pairs <= --runs")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every measurement, print the tables, write the JSON file."""
    args = parse_args(argv)
    loadgen, measure = pick_loadgen(args.loadgen)
    keyed = loadgen == "wrk"
    if keyed:
        measure = wrk_with_key
    points = [Point("trivial", TRIVIAL, c) for c in args.concurrency]
    options = ServerOptions(args.max_workers, args.loop, args.http)
    stack = resolved_server_stack(args.loop, args.http)
    print(
        f"load generator: {'wrk (with the API key)' if keyed else 'python (bench/loadgen.py, no key)'}; "
        f"uvicorn loop={stack['loop']} http={stack['http']}; on: auth + metrics + {args.log_format} access log, "
        f"off: none; {args.runs} run(s) x {args.duration:g} s (+{args.warmup:g} s warm-up) per server and point, "
        f"shared among {args.pairs} server pair(s)",
        file=sys.stderr,
    )
    # The servers inherit this environment (`bench.http_local.server_env`): the apps read these.
    os.environ["BENCH_LOG_FORMAT"] = args.log_format
    os.environ["BENCH_SEND_KEY"] = "1" if keyed else "0"
    started = time.time()
    counted = {"metrics": 0.0, "lines": 0}
    for number, runs in enumerate(pair_runs(args.runs, args.pairs), 1):
        print(f"server pair {number}/{args.pairs}", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="framex-bench-") as tmp:
            with contextlib.ExitStack() as exits:
                servers = {spec.key: exits.enter_context(running(spec, options, Path(tmp), READY)) for spec in APPS}
                check(servers, keyed)
                measure_all(points, servers, measure, args, runs)
                counted["metrics"] += served_requests(servers["on"].port)
                on_log = servers["on"].log_path
            # After the server stopped: its writer thread has written everything queued.
            counted["lines"] += access_lines(on_log)

    table, diagnostics = render_table(points, LABELS), render_diagnostics(points, LABELS)
    notes = summarize(points, counted, keyed, args)
    print_results(table, diagnostics, notes=notes)

    report = {
        "command": command_line("bench.production", argv),
        "started": timestamp(started),
        "seconds": round(time.time() - started, 1),
        "settings": {
            "duration": args.duration,
            "warmup": args.warmup,
            "runs": args.runs,
            "pairs": args.pairs,
            "max_workers": args.max_workers,
            "retries": args.retries,
            "other_load_limit": OTHER_LOAD_LIMIT,
            "log_format": args.log_format,
            "auth_on_route": keyed,
            "load_generator": loadgen,
            "uvicorn": {"loop": args.loop, "http": args.http, "resolved": stack, "workers": 1},
        },
        "machine": machine(),
        "source": source_state(),
        "versions": versions(
            "framex", "fastapi", "starlette", "uvicorn", "pydantic", "prometheus-client", "uvloop", "httptools"
        ),
        "notes": notes,
        "on_server": counted,
        "points": [p.to_dict("on", "off") for p in points],
        "table": table,
    }
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    run_cli(main, "interrupted; the servers were stopped")
