"""The proxy plugin's extra hop: a trivial upstream route called directly and through FrameX.

The upstream is the plain FastAPI app of ``bench.apps.fastapi_app``; the proxy is a
FrameX app with only the ``proxy`` plugin, mirroring the upstream's ``/api/v1/*``
routes. Both uvicorn processes are children of one launcher process, so the CPU the
benchmark counts as "server" is the same pair of processes in both measurements (the
proxy idles while the upstream is called directly). A load generator drives
``GET /api/v1/trivial`` on the upstream's port or the proxy's, alternating; medians of
``--runs`` are reported. Afterwards the upstream's established and TIME_WAIT connections
from the proxy are counted: with a shared pool they stay at the pool's size, whatever
the number of requests.

Run from the repository root::

    python -m bench.proxy            # full run, about 2 minutes
    python -m bench.proxy --quick    # smoke run

The table goes to stdout, progress to stderr, everything to ``bench/results/proxy.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    HOST,
    RESULTS,
    ROOT,
    Point,
    Target,
    add_load_options,
    apply_profile,
    base_env,
    check_load_options,
    command_line,
    free_port,
    http_get,
    log_tail,
    machine,
    measure_point,
    pick_loadgen,
    print_results,
    render_diagnostics,
    render_table,
    stop,
    timestamp,
    uvicorn_command,
    versions,
    wait_for_200,
    write_report,
)

DEFAULT_OUTPUT = RESULTS / "proxy.json"
TARGET = 0.7
"""Through the proxy, at least this share of the requests/s of calling the upstream directly."""
TRIVIAL = "/api/v1/trivial"
FULL = {"duration": 5.0, "warmup": 1.0, "runs": 3, "concurrency": [1, 16, 64]}
QUICK = {"duration": 1.0, "warmup": 0.3, "runs": 1, "concurrency": [8]}
LABELS = [("proxy", "through proxy"), ("direct", "direct")]
SATURATING = 16
"""Connections from which both servers are kept busy: the throughput target applies there."""
POOL = 100
"""``plugins.proxy.max_connections`` of the proxy under test."""


@functools.cache
def _proxy_app() -> Any:
    import framex

    upstream = os.environ["BENCH_UPSTREAM"]
    container = framex.create_container(
        None,
        load_plugins=[],
        load_builtin_plugins=["proxy"],
        plugins={
            "proxy": {
                "upstreams": {upstream: {"enable": ["/api/v1/*"], "openapi_path": "/openapi.json"}},
                "max_connections": POOL,
            }
        },
        log={"access_log": False},
    )
    framex.use_container(container)
    return framex.create_app(container)


def __getattr__(name: str) -> Any:
    # uvicorn imports `bench.proxy:app`.
    if name == "app":
        return _proxy_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- the pair of servers ------------------------------------------------------------


def _uvicorn(app: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            uvicorn_command(sys.executable, app, ROOT, port), env=env, stdout=out, stderr=subprocess.STDOUT
        )


def serve_pair(upstream_port: int, proxy_port: int, workdir: Path) -> int:
    """The launcher: start the upstream, then the proxy, and stop both on SIGTERM."""
    env = base_env(BENCH_UPSTREAM=f"http://{HOST}:{upstream_port}")
    upstream = _uvicorn("bench.apps.fastapi_app:app", upstream_port, env, workdir / "upstream.log")
    wait_for_200(upstream_port, TRIVIAL, upstream, "upstream", 60.0, lambda: log_tail(workdir / "upstream.log"))
    proxy = _uvicorn("bench.proxy:app", proxy_port, env, workdir / "proxy.log")
    signal.signal(signal.SIGTERM, lambda *_: None)  # wake up from the wait below
    try:
        signal.sigwait([signal.SIGTERM, signal.SIGINT])
    finally:
        stop(proxy)
        stop(upstream)
    return 0


def _connections_to(port: int) -> dict[str, int]:
    """Loopback TCP sockets whose remote end is ``port``, by state (clients of that server)."""
    states = {"01": "established", "06": "time_wait"}
    counts = dict.fromkeys(states.values(), 0)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote, state = fields[2], fields[3]
            if int(remote.rsplit(":", 1)[1], 16) == port and state in states:
                counts[states[state]] += 1
    return counts


# -- measuring ------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.proxy", description="A trivial upstream route called directly and through the proxy."
    )
    add_load_options(parser, FULL, DEFAULT_OUTPUT)
    parser.add_argument("--concurrency", type=int, nargs="+", help=f"connections {FULL['concurrency']}")
    parser.add_argument("--serve-pair", nargs=3, metavar=("UPSTREAM_PORT", "PROXY_PORT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_pair:
        return args
    apply_profile(args, QUICK if args.quick else FULL)
    check_load_options(parser, args, args.concurrency)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every measurement, print the tables, write the JSON file."""
    args = parse_args(argv)
    if args.serve_pair:
        upstream_port, proxy_port, workdir = args.serve_pair
        return serve_pair(int(upstream_port), int(proxy_port), Path(workdir))
    loadgen, measure = pick_loadgen(args.loadgen)
    points = [Point("trivial", TRIVIAL, c) for c in args.concurrency]
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="framex-bench-proxy-") as tmp:
        upstream_port, proxy_port = free_port(), free_port()
        launcher = subprocess.Popen(
            [sys.executable, "-m", "bench.proxy", "--serve-pair", str(upstream_port), str(proxy_port), tmp], cwd=ROOT
        )
        try:
            wait_for_200(proxy_port, TRIVIAL, launcher, "proxy", 90.0, lambda: log_tail(Path(tmp) / "proxy.log"))
            for port in (upstream_port, proxy_port):
                status, body = http_get(port, TRIVIAL)
                if status != 200 or json.loads(body) != {"ok": True}:
                    raise SystemExit(f"GET {TRIVIAL} on port {port} answered {status}: {body[:200]!r}")
            targets = {
                "proxy": Target(proxy_port, launcher.pid, tree=True),
                "direct": Target(upstream_port, launcher.pid, tree=True),
            }
            # First, before any client but the proxy has connected to the upstream: its pool.
            proxied = measure(targets["proxy"], TRIVIAL, max(args.concurrency), args.duration, 0.0)
            pool = _connections_to(upstream_port)
            for point in points:
                for run in range(args.runs):
                    order = LABELS if run % 2 == 0 else LABELS[::-1]
                    for key, label in order:
                        measure_point(measure, targets[key], point, key, label, f"run {run + 1}/{args.runs}", args)
        finally:
            stop(launcher)

    table, diagnostics = render_table(points, LABELS), render_diagnostics(points, LABELS)
    notes = []
    # Throughput is compared where the servers are saturated; one connection measures the
    # latency of two hops against one instead (about 0.5x by construction).
    ratios = [r for p in points if p.concurrency >= SATURATING and (r := p.ratio("proxy", "direct")) is not None]
    if ratios:
        verdict = "meets" if min(ratios) >= TARGET else "is BELOW"
        notes.append(
            f"lowest throughput ratio through proxy / direct at concurrency >= {SATURATING}: {min(ratios):.3f}x "
            f"{verdict} the {TARGET}x target"
        )
    for point in points:
        if point.concurrency < SATURATING and (r := point.ratio("proxy", "direct")) is not None:
            notes.append(f"concurrency {point.concurrency}: {r:.3f}x (latency-bound: two hops against one)")
    notes.append(
        f"connection pool: after {proxied.ok + proxied.errors:,} requests through the proxy at concurrency "
        f"{max(args.concurrency)} (before any other client), the upstream had {pool['established']} "
        f"established connection(s) from it and {pool['time_wait']} closed ones in TIME_WAIT (pool size {POOL}; "
        "a new connection per request would leave one closed connection per request)"
    )
    print_results(table, diagnostics, notes=notes)
    report = {
        "command": command_line("bench.proxy", argv),
        "started": timestamp(started),
        "seconds": round(time.time() - started, 1),
        "settings": {"duration": args.duration, "warmup": args.warmup, "runs": args.runs, "load_generator": loadgen},
        "machine": machine(),
        "versions": versions("framex", "fastapi", "uvicorn", "aiohttp"),
        "notes": notes,
        "connections": pool,
        "points": [p.to_dict("proxy", "direct") for p in points],
        "table": table,
    }
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
