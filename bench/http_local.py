"""FrameX against plain FastAPI over loopback: requests/s and p99 latency side by side.

Both apps (``bench/apps``) serve the same two handlers under the same uvicorn settings,
each in its own process; a load generator in a third process drives one app at a time,
alternating between them, and the median of ``--runs`` measurements is reported.

Run from the repository root::

    python -m bench.http_local            # full run, a few minutes
    python -m bench.http_local --quick    # smoke run, a few seconds

The table goes to stdout, progress to stderr, everything to ``bench/results/http_local.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    OTHER_LOAD_LIMIT,
    RESULTS,
    ROOT,
    Measure,
    Point,
    Target,
    add_load_options,
    add_server_options,
    apply_profile,
    check_load_options,
    command_line,
    free_port,
    http_get,
    log_tail,
    machine,
    measure_point,
    measurement_notes,
    pick_loadgen,
    print_results,
    render_diagnostics,
    render_table,
    run_cli,
    serving,
    timestamp,
    uvicorn_command,
    versions,
    write_report,
)

DEFAULT_OUTPUT = RESULTS / "http_local.json"
TRIVIAL_TARGET = 0.85
"""FrameX should serve at least this share of plain FastAPI's requests/s on the trivial route."""

FULL = {"duration": 5.0, "warmup": 1.0, "runs": 3, "concurrency": [1, 16, 64], "blocking_concurrency": [16, 64, 128]}
QUICK = {"duration": 1.0, "warmup": 0.3, "runs": 1, "concurrency": [1, 8], "blocking_concurrency": [8]}


@dataclass(frozen=True)
class AppSpec:
    """One app under test and how to find the handler's result in its response body."""

    key: str
    label: str
    target: str
    unwrap: Callable[[Any], Any]


APPS = (
    AppSpec("framex", "FrameX", "bench.apps.framex_app:app", lambda body: body["data"]),
    AppSpec("fastapi", "FastAPI", "bench.apps.fastapi_app:app", lambda body: body),
)
LABELS = [(spec.key, spec.label) for spec in APPS]


@dataclass(frozen=True)
class ServerOptions:
    """What both uvicorn processes share (``console`` and ``metrics`` concern FrameX's only)."""

    max_workers: int
    loop: str
    http: str
    console: str = "on"
    metrics: str = "off"


@dataclass
class Server:
    """A running uvicorn process serving one app."""

    spec: AppSpec
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def target(self) -> Target:
        return Target(self.port, self.process.pid)

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)


# -- servers ------------------------------------------------------------------------


def server_env(max_workers: int, console: str = "on", metrics: str = "off") -> dict[str, str]:
    """The environment of a server: ours without FrameX configuration, plus the pool size and
    whether FrameX's console and metrics are on."""
    env = {k: v for k, v in os.environ.items() if k != "FRAMEX_CONFIG" and not k.startswith("FRAMEX__")}
    env["BENCH_MAX_WORKERS"] = str(max_workers)
    env["BENCH_CONSOLE"] = console
    env["BENCH_METRICS"] = metrics
    env.pop("PYTHONPATH", None)  # `--app-dir` puts this checkout first on sys.path
    return env


@contextlib.contextmanager
def running(
    spec: AppSpec, options: ServerOptions, workdir: Path, ready_path: str, cpus: set[int] | None = None
) -> Iterator[Server]:
    """Start ``spec`` under uvicorn in ``workdir`` (no ``config/local.yaml`` there); stop it on exit.

    ``cpus``: run it on those CPUs only (see :func:`bench.common.serving`)."""
    port = free_port()
    command = uvicorn_command(sys.executable, spec.target, ROOT, port, options.loop, options.http)
    log_path = workdir / f"{spec.key}.log"
    env = server_env(options.max_workers, options.console, options.metrics)
    with serving(
        command,
        label=spec.label,
        port=port,
        ready_path=ready_path,
        cwd=workdir,
        env=env,
        log_path=log_path,
        cpus=cpus,
    ) as (process, _):
        yield Server(spec, port, process, log_path)


def check_answers(server: Server, trivial: str, blocking: str) -> None:
    """Both routes answer 200 with the handler's result before anything is measured."""
    for path, expected in ((trivial, {"ok": True}), (f"{blocking}?ms=1", 1)):
        status, body = http_get(server.port, path)
        got = server.spec.unwrap(json.loads(body)) if status == 200 else None
        if got != expected:
            raise RuntimeError(f"{server.spec.label} GET {path}: status {status}, body {body[:200]!r}")


def resolved_server_stack(loop: str, http: str) -> dict[str, str]:
    """What uvicorn's ``auto`` picks here (uvloop / httptools when installed)."""
    if loop == "auto":
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return {"loop": loop, "http": http}


# -- main ---------------------------------------------------------------------------


def measure_all(points: list[Point], servers: dict[str, Server], measure: Measure, args: argparse.Namespace) -> None:
    """Fill every point: ``--runs`` rounds, the apps alternating within each round.

    A measurement that other processes disturbed is taken again (up to ``--retries``
    times) and the least disturbed attempt is kept.
    """
    for point in points:
        for run in range(args.runs):
            for spec in APPS:
                target = servers[spec.key].target
                measure_point(measure, target, point, spec.key, spec.label, f"run {run + 1}/{args.runs}", args)


def summarize(points: list[Point], args: argparse.Namespace) -> list[str]:
    """The verdicts printed under the tables."""
    notes: list[str] = []
    trivial_ratios = [r for p in points if p.scenario == "trivial" and (r := p.ratio("framex", "fastapi")) is not None]
    if trivial_ratios:
        verdict = "meets" if min(trivial_ratios) >= TRIVIAL_TARGET else "is BELOW"
        notes.append(f"trivial: lowest ratio {min(trivial_ratios):.3f}x {verdict} the {TRIVIAL_TARGET}x target")
    if "blocking" in args.scenarios and args.blocking_ms > 0:
        ceiling = args.max_workers * 1000 / args.blocking_ms
        notes.append(
            f"blocking: pool ceiling {args.max_workers} workers / {args.blocking_ms} ms = {ceiling:,.0f} req/s"
        )
    notes += measurement_notes(points, args.retries)
    return notes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.http_local",
        description="Compare FrameX with plain FastAPI over loopback (requests/s and p99 latency).",
    )
    add_load_options(parser, FULL, DEFAULT_OUTPUT)
    parser.add_argument(
        "--concurrency", type=int, nargs="+", help=f"connections for the trivial route {FULL['concurrency']}"
    )
    parser.add_argument(
        "--blocking-concurrency",
        type=int,
        nargs="+",
        help=f"connections for the blocking route {FULL['blocking_concurrency']}",
    )
    parser.add_argument("--blocking-ms", type=int, default=50, help="how long each blocking job sleeps (50)")
    parser.add_argument("--max-workers", type=int, default=32, help="thread pool size of both apps (32)")
    parser.add_argument("--scenarios", nargs="+", choices=["trivial", "blocking"], default=["trivial", "blocking"])
    parser.add_argument("--console", choices=["on", "off"], default="on", help="FrameX's console (on, the default)")
    parser.add_argument("--metrics", choices=["on", "off"], default="off", help="FrameX's metrics (off, the default)")
    add_server_options(parser, pool=False)
    args = parser.parse_args(argv)
    apply_profile(args, QUICK if args.quick else FULL)
    check_load_options(parser, args, [*args.concurrency, *args.blocking_concurrency])
    if args.max_workers < 1 or args.blocking_ms < 0:
        parser.error("need --max-workers >= 1 and --blocking-ms >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every measurement, print the tables, write the JSON file."""
    args = parse_args(argv)
    loadgen, measure = pick_loadgen(args.loadgen)
    trivial_path, blocking_path = "/api/v1/trivial", "/api/v1/blocking"
    scenarios = {
        "trivial": (trivial_path, args.concurrency),
        "blocking": (f"{blocking_path}?ms={args.blocking_ms}", args.blocking_concurrency),
    }
    points = [Point(name, path, c) for name in args.scenarios for path, levels in [scenarios[name]] for c in levels]
    options = ServerOptions(args.max_workers, args.loop, args.http, args.console, args.metrics)
    stack = resolved_server_stack(args.loop, args.http)
    print(
        f"load generator: {'wrk' if loadgen == 'wrk' else 'python (bench/loadgen.py)'}; uvicorn loop={stack['loop']} "
        f"http={stack['http']}; max_workers={args.max_workers}; FrameX console {args.console}, metrics "
        f"{args.metrics}; {args.runs} run(s) x {args.duration:g} s "
        f"(+{args.warmup:g} s warm-up) per app and point",
        file=sys.stderr,
    )

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="framex-bench-") as tmp, contextlib.ExitStack() as servers:
        running_apps = {
            spec.key: servers.enter_context(running(spec, options, Path(tmp), trivial_path)) for spec in APPS
        }
        for server in running_apps.values():
            check_answers(server, trivial_path, blocking_path)
        measure_all(points, running_apps, measure, args)

    table, diagnostics = render_table(points, LABELS), render_diagnostics(points, LABELS)
    notes = summarize(points, args)
    print_results(table, diagnostics, notes=notes)

    report = {
        "command": command_line("bench.http_local", argv),
        "started": timestamp(started),
        "seconds": round(time.time() - started, 1),
        "settings": {
            "duration": args.duration,
            "warmup": args.warmup,
            "runs": args.runs,
            "max_workers": args.max_workers,
            "blocking_ms": args.blocking_ms,
            "retries": args.retries,
            "other_load_limit": OTHER_LOAD_LIMIT,
            "load_generator": loadgen,
            "uvicorn": {"loop": args.loop, "http": args.http, "resolved": stack, "workers": 1},
            "framex": {"console": args.console, "metrics": args.metrics},
        },
        "machine": machine(),
        "versions": versions("framex", "fastapi", "starlette", "uvicorn", "pydantic", "uvloop", "httptools", "h11"),
        "notes": notes,
        "points": [p.to_dict("framex", "fastapi") for p in points],
        "table": table,
    }
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    run_cli(main, "interrupted; the servers were stopped")
