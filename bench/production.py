"""The cost of FrameX's production features on the trivial route: all on against all off.

Two uvicorn processes serve the same FrameX app (``bench_plugin``, as in
``bench.http_local``) with the same flags. ``on`` has API-key auth on every
``/api/v1/*`` path (and ``/metrics``), Prometheus metrics, and one access-log line per
request, set up as ``framex run`` sets logging up (``framex.logs.configure_logging``:
a queue and a writer thread, into the server's log file). Both apps freeze the garbage
collector's view of the start-up objects, as ``framex run`` does. ``off`` has no auth rules,
metrics off, the access log off, and the same logging set-up. Both get the same request,
``Authorization`` header included.

Both servers run on one CPU, each in a session of its own; the load generators (wrk,
one per server) and this driver run on the others. Two measurements:

- **side by side** (the verdict): both servers are loaded at the same time, so whatever
  the machine does to that CPU (other virtual machines, frequency, caches) it does to
  both. Each server's requests per CPU-second of its own is its throughput when it has
  the CPU to itself; the on/off ratio of that, one per round, is what the target is
  about (median of ``--runs`` rounds).
- **alone**: one server at a time, alternating (the order flips every run), for absolute
  req/s and latency; medians of ``--runs``. On a machine whose speed drifts between runs,
  these ratios scatter by far more than the features cost.

The runs are shared among ``--pairs`` pairs of servers started one after the other: two
processes of the same app differ by a few percent in speed (memory layout, hash seeds),
so one pair alone can tip the ratio either way. ``--calibrate`` runs the off app in both
servers: the spread of the measurement itself.

Run from the repository root::

    python -m bench.production            # full run, about 6 minutes
    python -m bench.production --quick    # smoke run, a few seconds

The tables go to stdout, progress to stderr, everything to ``bench/results/production.json``.

This module also holds the two apps (``bench.production:app_on`` / ``app_off``), built
when uvicorn first asks for one. ``BENCH_LOG_FORMAT`` (text or json) sets the on app's
log format.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
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
    children_cpu_seconds,
    command_line,
    disturbed,
    least_disturbed,
    machine,
    measure_point,
    measurement_notes,
    num,
    paired_note,
    pick_loadgen,
    print_results,
    render_diagnostics,
    render_table,
    run_cli,
    run_wrk,
    source_state,
    spread,
    timestamp,
    versions,
    write_report,
    wrk_command,
    wrk_result,
    wrk_summary,
)
from bench.http_local import AppSpec, Server, ServerOptions, resolved_server_stack, running
from bench.loadgen import LoadResult, cpu_shares, usage

DEFAULT_OUTPUT = RESULTS / "production.json"
TARGET = 0.9
"""With everything on, FrameX should serve at least this share of the requests/s it serves with everything off."""
TRIVIAL = "/api/v1/trivial"
READY = "/health"
"""Public in both apps: readiness is polled without a key."""
API_KEY = "bench-production-key-0123456789"
AUTH_HEADER = f"Bearer {API_KEY}"
FEATURES = ("auth", "metrics", "log")
"""What the on app has (``--features``): API-key auth, Prometheus metrics, the access log."""
OPTIONAL_FEATURES = ("console",)
"""What the on app has only when ``--features`` names it: the console (off in the off app)."""
HEADERS = [f"Authorization: {AUTH_HEADER}"]

FULL = {"duration": 3.0, "warmup": 1.0, "runs": 9, "pairs": 3, "concurrency": [1, 16, 64]}
"""Many short runs rather than a few long ones: one disturbed run moves the median of
nine less than the median of five."""
MIN_ROUNDS = 5
"""Fewer side-by-side rounds per point than this make no verdict (``--quick``)."""
QUICK = {"duration": 1.0, "warmup": 0.3, "runs": 1, "pairs": 1, "concurrency": [8]}

APPS = (
    AppSpec("on", "on", "bench.production:app_on", lambda body: body["data"]),
    AppSpec("off", "off", "bench.production:app_off", lambda body: body["data"]),
)


# -- the apps (in the server processes) ---------------------------------------------


@functools.cache
def build_app(on: bool) -> Any:
    """The ``bench.apps.framex_app`` app with the features of ``BENCH_FEATURES`` on (all three
    unless set), or all off."""
    import framex
    from framex.logs import configure_logging

    features = set(os.environ.get("BENCH_FEATURES", ",".join(FEATURES)).split(",")) if on else set()
    settings: dict[str, Any] = {
        "metrics": {"enabled": "metrics" in features},
        "console": {"enabled": "console" in features},
        "log": {"access_log": "log" in features, "format": os.environ.get("BENCH_LOG_FORMAT", "text")},
    }
    if "auth" in features:
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
    container.owns_process.override(True)  # as `framex run` does: start-up objects out of full collections
    return framex.create_app(container)


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
    return run_wrk(target, path, concurrency, duration, warmup, headers=HEADERS)


def check(servers: dict[str, Server], keyed: bool, features: Sequence[str]) -> None:
    """Both answer the trivial route; only `on` has the ``features``: a key needed, metrics served."""
    for server in servers.values():
        status, body = get(server.port, TRIVIAL)
        if status != 200 or server.spec.unwrap(json.loads(body)) != {"ok": True}:
            raise RuntimeError(f"{server.spec.label} GET {TRIVIAL}: status {status}, body {body[:200]!r}")
    on, off = servers["on"].port, servers["off"].port
    auth, metrics = "auth" in features, "metrics" in features
    expected = {
        "on without key": (get(on, TRIVIAL, key=False)[0], 401 if keyed and auth else 200),
        "on /metrics": (get(on, "/metrics")[0], 200 if metrics else 404),
        "on /metrics without key": (get(on, "/metrics", key=False)[0], 401 if auth else 200 if metrics else 404),
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


def cpu_layout() -> tuple[set[int] | None, set[int] | None]:
    """The servers' CPU (the last one this process may use) and everyone else's; (None, None) with one CPU."""
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(available) < 2:
        return None, None
    return {available[-1]}, set(available[:-1])


def load_together(servers: dict[str, Server], path: str, concurrency: int, seconds: float) -> dict[str, LoadResult]:
    """Load every server at once, each with its own wrk; one result per server.

    ``loadgen CPU`` is both wrk processes; ``other load`` leaves out both servers.
    """
    whole = max(1, round(seconds))
    before = {key: usage(server.process.pid, children_cpu_seconds) for key, server in servers.items()}
    command = functools.partial(wrk_command, path=path, concurrency=concurrency, seconds=whole, headers=HEADERS)
    loads = {
        key: subprocess.Popen(command(server.port), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for key, server in servers.items()
    }
    outputs = {key: load.communicate(timeout=whole + 60) for key, load in loads.items()}
    after = {key: usage(server.process.pid, children_cpu_seconds) for key, server in servers.items()}
    shares = {key: cpu_shares(before[key], after[key]) for key in servers}
    results = {}
    for key, (stdout, stderr) in outputs.items():
        mine = shares[key]
        others = sum(share["server_cpu"] or 0.0 for other, share in shares.items() if other != key)
        if mine["other_cpu"] is not None:
            mine["other_cpu"] = max(0.0, mine["other_cpu"] - others)
        results[key] = wrk_result(wrk_summary(loads[key].returncode, stdout, stderr), concurrency, mine)
    return results


def per_cpu_second(result: LoadResult) -> float | None:
    """Requests served per CPU-second of the server's own: its throughput with a CPU to itself."""
    us = result.server_us_per_request
    return 1e6 / us if us else None


def per_cpu_ratios(point: Point, app: str, base: str) -> list[float]:
    """``app`` / ``base`` requests per CPU-second of each side-by-side round."""
    ratios = []
    for mine, theirs in zip(point.runs.get(app, []), point.runs.get(base, []), strict=False):
        a, b = per_cpu_second(mine), per_cpu_second(theirs)
        if a and b:
            ratios.append(a / b)
    return ratios


def median_per_cpu_second(point: Point, app: str) -> float | None:
    """The median of ``app``'s requests per CPU-second over the rounds of ``point``."""
    values = [v for result in point.runs.get(app, []) if (v := per_cpu_second(result))]
    return statistics.median(values) if values else None


def other_load(results: dict[str, LoadResult]) -> float:
    """Cores other processes used during a side-by-side round."""
    return max(r.other_cpu or 0.0 for r in results.values())


def side_by_side_round(
    servers: dict[str, Server], point: Point, run: int, args: argparse.Namespace
) -> dict[str, LoadResult]:
    """One round of ``point`` (:func:`load_together`), its progress line on stderr."""
    results = load_together(servers, point.path, point.concurrency, args.duration)
    on, off = results["on"], results["off"]
    on_cpu, off_cpu = per_cpu_second(on), per_cpu_second(off)
    print(
        f"  side by side c={point.concurrency:<4} run {run + 1}/{args.runs} "
        f"on {on.rps:7,.0f} req/s ({num(on_cpu, '6,.0f')} per CPU-s)  "
        f"off {off.rps:7,.0f} req/s ({num(off_cpu, '6,.0f')} per CPU-s)  "
        f"ratio {num(on_cpu / off_cpu if on_cpu and off_cpu else None, '.3f')}  "
        f"other {other_load(results):.2f} steal {num(on.steal, '.0%')}"
        f"{'  (disturbed)' if disturbed(other_load(results)) else ''}",
        file=sys.stderr,
        flush=True,
    )
    return results


def measure_side_by_side(
    points: list[Point], servers: dict[str, Server], args: argparse.Namespace, runs: range
) -> None:
    """Rounds ``runs`` of every point, both servers loaded at once (after one warm-up together).

    A round that other processes disturbed is taken again (up to ``--retries`` times); the
    least disturbed attempt is kept.
    """
    for point in points:
        if args.warmup > 0:
            load_together(servers, point.path, point.concurrency, args.warmup)
        for run in runs:
            # Which wrk starts first flips every round, as the order of the alone runs does.
            ordered = servers if run % 2 == 0 else dict(reversed(servers.items()))
            take = functools.partial(side_by_side_round, ordered, point, run, args)
            for key, result in least_disturbed(take, other_load, args.retries).items():
                point.runs.setdefault(key, []).append(result)


def measure_alone(
    points: list[Point], servers: dict[str, Server], measure: Measure, args: argparse.Namespace, runs: range
) -> None:
    """Rounds ``runs`` of every point; each round measures both servers, the order flipping every round."""
    for point in points:
        for run in runs:
            for spec in APPS if run % 2 == 0 else APPS[::-1]:
                target = servers[spec.key].target
                measure_point(measure, target, point, spec.key, spec.label, f"run {run + 1}/{args.runs}", args)


def render_side_by_side(points: list[Point]) -> str:
    """The verdict's table: req/s while sharing the CPU, req per CPU-second, their on/off ratio."""
    lines = [
        "| side by side | concurrency | on req/s | off req/s | on req per CPU-s | off req per CPU-s "
        "| on / off per CPU-s | range over rounds |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in points:
        ratios = per_cpu_ratios(p, "on", "off")
        on_cpu, off_cpu = median_per_cpu_second(p, "on"), median_per_cpu_second(p, "off")
        lines.append(
            f"| trivial | {p.concurrency} "
            f"| {num(p.median('on', 'rps'), ',.0f')} | {num(p.median('off', 'rps'), ',.0f')} "
            f"| {num(on_cpu, ',.0f')} | {num(off_cpu, ',.0f')} "
            f"| {num(statistics.median(ratios) if ratios else None, '.3f')}x | {spread(ratios, '.3f')} |"
        )
    return "\n".join(lines)


def verdict(points: list[Point], args: argparse.Namespace) -> tuple[float | None, str | None]:
    """The lowest median per-CPU-second ratio over the side-by-side points, and the note that says it."""
    medians = [statistics.median(r) for p in points if (r := per_cpu_ratios(p, "on", "off"))]
    if not medians:
        return None, None
    lowest = min(medians)
    if args.calibrate:
        return lowest, (
            f"calibration (the off app in both servers): per-CPU-second ratios {lowest:.3f}x-{max(medians):.3f}x "
            "(medians per point); 1.0 plus or minus this is the resolution of the verdict"
        )
    if set(args.features) != set(FEATURES):
        return lowest, (
            f"only {' + '.join(args.features)} on: lowest side-by-side median on/off requests per CPU-second "
            f"{lowest:.3f}x (the {TARGET}x target is about all three)"
        )
    word = "meets" if lowest >= TARGET else "is BELOW"
    # Single rounds scatter by about ±5% (see --calibrate): a median of a few says little.
    caveat = f" (only {args.runs} round(s) per point: a smoke run, not a verdict)" if args.runs < MIN_ROUNDS else ""
    return lowest, (
        f"verdict: lowest side-by-side median on/off requests per CPU-second {lowest:.3f}x {word} the "
        f"{TARGET}x target{caveat}"
    )


def summarize(
    said: str | None,
    side: list[Point],
    alone: list[Point],
    counted: dict[str, float],
    args: argparse.Namespace,
    pinned: bool,
) -> list[str]:
    """The notes under the tables; ``said`` is :func:`verdict`'s."""
    notes: list[str] = []
    if said is not None:
        notes.append(said)
    elif not side:
        notes.append("no side-by-side measurement (it needs wrk): the alone runs are all there is")
    if not pinned:
        notes.append("one CPU only: servers and load generators shared it")
    ratios = [r for p in alone if (r := p.ratio("on", "off")) is not None]
    if ratios:
        notes.append(
            f"alone: lowest ratio of median req/s on/off {min(ratios):.3f}x (runs minutes apart: the machine's "
            "drift weighs in)"
        )
    notes += [f"alone, {note}" for p in alone if (note := paired_note(p, "on", "off")) is not None]
    if not args.keyed:
        notes.append("the Python load generator sends no headers: auth guarded /metrics only, not the route")
    if not args.calibrate and set(args.features) >= {"metrics", "log"}:
        notes.append(
            f"on servers: {counted['metrics']:,.0f} trivial requests counted in their metrics, "
            f"{counted['lines']:,} access lines written to their logs (warm-ups and checks included)"
        )
    notes += measurement_notes([*side, *alone], args.retries)
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
    parser.add_argument(
        "--features",
        nargs="+",
        choices=FEATURES + OPTIONAL_FEATURES,
        default=list(FEATURES),
        help="what the on app has (auth, metrics, log); `console` only when named: the cost of one feature alone",
    )
    parser.add_argument("--no-alone", action="store_true", help="side by side only (the verdict): a third of the time")
    parser.add_argument(
        "--calibrate", action="store_true", help="serve the off app in both servers: the measurement's own spread"
    )
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
    args.keyed = loadgen == "wrk"
    if args.keyed:
        measure = wrk_with_key
    server_cpus, driver_cpus = cpu_layout()
    if driver_cpus is not None:
        os.sched_setaffinity(0, driver_cpus)  # the load generators inherit it
    side = [Point("side by side", TRIVIAL, c) for c in args.concurrency] if args.keyed else []
    alone = [] if args.no_alone and side else [Point("trivial", TRIVIAL, c) for c in args.concurrency]
    apps = (dataclasses.replace(APPS[0], target=APPS[1].target, label="off (2nd)"), APPS[1]) if args.calibrate else APPS
    options = ServerOptions(args.max_workers, args.loop, args.http)
    stack = resolved_server_stack(args.loop, args.http)
    on_said = " + ".join(f"{args.log_format} access log" if f == "log" else f for f in args.features)
    kinds = [kind for kind, points in (("side by side", side), ("alone", alone)) if points]
    apps_said = "off against off" if args.calibrate else f"on: {on_said}, off: none"
    print(
        f"load generator: {'wrk (with the API key)' if args.keyed else 'python (bench/loadgen.py, no key)'}; "
        f"uvicorn loop={stack['loop']} http={stack['http']}; "
        f"{apps_said}; "
        f"servers on CPU {sorted(server_cpus) if server_cpus else 'any'}; "
        f"{args.runs} run(s) x {args.duration:g} s (+{args.warmup:g} s warm-up) per point, {' and '.join(kinds)}, "
        f"shared among {args.pairs} server pair(s)",
        file=sys.stderr,
    )
    # The servers inherit this environment (`bench.http_local.server_env`): the apps read these.
    os.environ["BENCH_LOG_FORMAT"] = args.log_format
    os.environ["BENCH_SEND_KEY"] = "1" if args.keyed else "0"
    os.environ["BENCH_FEATURES"] = ",".join(args.features)
    started = time.time()
    counted = {"metrics": 0.0, "lines": 0}
    for number, runs in enumerate(pair_runs(args.runs, args.pairs), 1):
        print(f"server pair {number}/{args.pairs}", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="framex-bench-") as tmp:
            with contextlib.ExitStack() as exits:
                servers = {
                    spec.key: exits.enter_context(running(spec, options, Path(tmp), READY, server_cpus))
                    for spec in apps
                }
                if not args.calibrate:
                    check(servers, args.keyed, args.features)
                measure_side_by_side(side, servers, args, runs)
                measure_alone(alone, servers, measure, args, runs)
                if not args.calibrate and "metrics" in args.features:
                    counted["metrics"] += served_requests(servers["on"].port)
                on_log = servers["on"].log_path
            # After the server stopped: its writer thread has written everything queued.
            if not args.calibrate and "log" in args.features:
                counted["lines"] += access_lines(on_log)

    labels = [(spec.key, spec.label) for spec in apps]
    tables = {"side_by_side": render_side_by_side(side)} if side else {}
    if alone:
        tables["alone"] = render_table(alone, labels)
    diagnostics = render_diagnostics([*side, *alone], labels)
    lowest, said = verdict(side, args)
    notes = summarize(said, side, alone, counted, args, server_cpus is not None)
    print_results(*tables.values(), diagnostics, notes=notes)

    report = {
        "command": command_line("bench.production", argv),
        "started": timestamp(started),
        "seconds": round(time.time() - started, 1),
        "settings": {
            "duration": args.duration,
            "warmup": args.warmup,
            "runs": args.runs,
            "pairs": args.pairs,
            "calibrate": args.calibrate,
            "max_workers": args.max_workers,
            "retries": args.retries,
            "other_load_limit": OTHER_LOAD_LIMIT,
            "log_format": args.log_format,
            "features": args.features,
            "auth_on_route": args.keyed,
            "load_generator": loadgen,
            "server_cpus": sorted(server_cpus) if server_cpus else None,
            "uvicorn": {"loop": args.loop, "http": args.http, "resolved": stack, "workers": 1},
        },
        "machine": machine(),
        "source": source_state(),
        "versions": versions(
            "framex", "fastapi", "starlette", "uvicorn", "pydantic", "prometheus-client", "uvloop", "httptools"
        ),
        "verdict": {"lowest_per_cpu_ratio": lowest, "target": TARGET},
        "notes": notes,
        "on_server": counted,
        "side_by_side": [{**p.to_dict("on", "off"), "per_cpu_ratios": per_cpu_ratios(p, "on", "off")} for p in side],
        "points": [p.to_dict("on", "off") for p in alone],
        "tables": tables,
    }
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    run_cli(main, "interrupted; the servers were stopped")
