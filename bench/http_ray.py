"""FrameX on Ray Serve against a hand-written Ray Serve app: requests/s, p99 and start-up time.

``framex run --adapter ray`` serves ``bench/apps/ray_plugin.py`` (a plugin class: ingress
deployment -> plugin deployment); ``bench/apps/serve_app.py`` does the same by hand. Each
server is its own process tree (a private Ray instance, 2 CPUs, 127.0.0.1). They never run
at the same time: every round starts one, measures every point, stops it and checks that
none of its processes are left, then does the same with the other (the order alternates).

Run from the repository root::

    python -m bench.http_ray            # full run, about 6 minutes
    python -m bench.http_ray --quick    # smoke run, about a minute

The tables go to stdout, progress to stderr, everything to ``bench/results/http_ray.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from bench.common import (
    HOST,
    OTHER_LOAD_LIMIT,
    RESULTS,
    ROOT,
    Measure,
    Point,
    Target,
    add_load_options,
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
    ray_processes,
    render_diagnostics,
    render_table,
    run_cli,
    session_processes,
    source_state,
    stop_session,
    timestamp,
    versions,
    wait_for_200,
    write_report,
)
from bench.loadgen import LoadResult, tree_cpu_seconds
from framex.config import Settings, load_settings

DEFAULT_OUTPUT = RESULTS / "http_ray.json"
TARGET = 0.9
"""FrameX should serve at least this share of the hand-written app's requests/s on both routes."""
TRIVIAL, BLOCKING = "/api/v1/trivial", "/api/v1/blocking"
READY_TIMEOUT = 240.0
"""Seconds a server may take to answer its first 200 (Ray and Serve start in there)."""

FULL = {"duration": 5.0, "warmup": 2.0, "runs": 3, "concurrency": [16, 64], "blocking_concurrency": [16, 64]}
QUICK = {"duration": 2.0, "warmup": 1.0, "runs": 1, "concurrency": [16], "blocking_concurrency": [16]}


@dataclass(frozen=True)
class ServerOptions:
    """What both servers share."""

    num_cpus: int
    max_ongoing_requests: int


@dataclass(frozen=True)
class AppSpec:
    """One server under test: how to start it in a working directory on a port."""

    key: str
    label: str
    command: Callable[[ServerOptions, int, Path], list[str]]


def framex_command(
    options: ServerOptions, port: int, workdir: Path, plugins: Sequence[str] = ("bench.apps.ray_plugin",)
) -> list[str]:
    """``framex run --adapter ray --config <file>``, the file loading only ``plugins`` (the bench plugin)."""
    config: dict[str, Any] = {
        "adapter": "ray",
        "server": {"host": HOST, "port": port},
        "ray": {
            "num_cpus": options.num_cpus,
            "dashboard": False,
            "log_to_driver": False,
            "deployment_defaults": {"num_replicas": 1, "max_ongoing_requests": options.max_ongoing_requests},
            "ingress_options": {"num_replicas": 1, "max_ongoing_requests": options.max_ongoing_requests},
        },
        "load_builtin_plugins": [],
        "load_plugins": list(plugins),
    }
    # FrameX's own log lines at warning and above (the level's key moved from `server` to `log`).
    if "log" in Settings.model_fields:
        config["log"] = {"level": "warning"}
    else:
        config["server"]["log_level"] = "warning"
    path = (workdir / "framex-ray.yaml").resolve()
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    load_settings(path, environ={})  # a schema change fails here, before a server starts
    script = Path(sys.executable).with_name("framex")
    program = [str(script)] if script.exists() else [sys.executable, "-m", "framex.cli"]
    return [*program, "run", "--adapter", "ray", "--config", str(path)]


def serve_command(options: ServerOptions, port: int, workdir: Path, module: str = "bench.apps.serve_app") -> list[str]:
    """A hand-written Ray Serve app (``module``, by default ``bench/apps/serve_app.py``)."""
    return [
        sys.executable,
        "-m",
        module,
        "--host",
        HOST,
        "--port",
        str(port),
        "--num-cpus",
        str(options.num_cpus),
        "--max-ongoing-requests",
        str(options.max_ongoing_requests),
    ]


APPS = (AppSpec("framex", "FrameX", framex_command), AppSpec("serve", "Ray Serve", serve_command))
LABELS = [(spec.key, spec.label) for spec in APPS]


@dataclass
class Server:
    """A running server: its session leader, and what was seen of it."""

    spec: AppSpec
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    startup_s: float = 0.0
    """From ``Popen`` to the first 200 on the trivial route."""
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds from ``Popen`` to each start-up milestone (see :func:`startup_phases`)."""
    killed: list[str] = field(default_factory=list)
    """Processes still there after the server exited (killed; empty: a clean stop)."""

    @property
    def target(self) -> Target:
        return Target(self.port, self.process.pid, tree=True)

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)


def server_env() -> dict[str, str]:
    """Our environment without FrameX or Ray settings; the checkout importable from any directory."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FRAMEX") and k not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    }
    env["PYTHONPATH"] = str(ROOT)
    return env


@contextlib.contextmanager
def running(spec: AppSpec, options: ServerOptions, workdir: Path, log_path: Path) -> Iterator[Server]:
    """Start ``spec`` in its own session; on exit stop it and every process it started."""
    port = free_port()
    command = spec.command(options, port, workdir)
    started, started_wall = time.monotonic(), time.time()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=workdir, env=server_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(spec, port, process, log_path)
    try:
        wait_for_200(port, TRIVIAL, process, spec.label, READY_TIMEOUT, server.log_tail, interval=0.02)
        server.startup_s = time.monotonic() - started
        yield server
    finally:
        server.killed = stop_session(process, timeout=60.0)
        if server.startup_s:  # the log is complete now: Serve may log "ready" after the first 200
            server.phases = startup_phases(log_path, started_wall, server.startup_s)
        if server.killed:
            print(f"  warning: {spec.label} left processes behind (killed): {server.killed}", file=sys.stderr)


MILESTONES = (
    ("ray", "Started a local Ray instance"),
    ("serve", "Started Serve"),
    ("deployed", "is ready at"),
)
"""Start-up milestones, from the INFO lines Ray and Serve log in the server process."""
_STAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})")


def startup_phases(log_path: Path, started_wall: float, first_200: float) -> dict[str, float]:
    """Seconds from process start to each milestone found in the log, and to the first 200."""
    found: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in log_path.read_text(errors="replace").splitlines():
            for key, text in MILESTONES:
                if key not in found and text in line and (stamp := _STAMP.search(line)):
                    wall = time.mktime(time.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S")) + int(stamp.group(2)) / 1000
                    found[key] = wall - started_wall
    found["first_200"] = first_200
    return found


def check_answers(server: Server) -> tuple[int, float]:
    """Both routes answer 200 with the handler's result.

    Returns the trivial body's size in bytes and how long the first blocking request
    took: the first Ray task of the server (a task worker may have to start and import
    the task's module).
    """
    size, first_task = 0, 0.0
    for path, expected in ((TRIVIAL, {"ok": True}), (f"{BLOCKING}?ms=1", 1)):
        started = time.perf_counter()
        status, body = http_get(server.port, path, timeout=60.0)
        got = json.loads(body).get("data") if status == 200 else None
        if got != expected:
            raise RuntimeError(f"{server.spec.label} GET {path}: status {status}, body {body[:200]!r}")
        size, first_task = size or len(body), time.perf_counter() - started
    return size, first_task


# -- where the CPU goes -------------------------------------------------------------

ROLES = ("proxy", "ingress", "plugin", "tasks", "driver", "ray system")
"""Process roles of a Ray Serve server, from process titles (``ray::ProxyActor``, ...)."""
TASK_TITLES = ("ray::IDLE", "ray::blocking_job", "ray::batched", "ray::single")
"""Titles of task workers: idle, or running a task function of the benchmarks (``bench.batching`` too)."""


def role(pid: int, server_pid: int) -> str:
    """The role of one process of the server's tree."""
    if pid == server_pid:
        return "driver"
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return "ray system"
    if title.startswith("ray::ProxyActor"):
        return "proxy"
    if title.startswith(("ray::ServeReplica", "ray::SERVE_REPLICA")):
        return "ingress" if "ingress" in title else "plugin"
    if title.startswith(TASK_TITLES):
        return "tasks"
    return "ray system"


@dataclass
class Breakdown:
    """Cores each role of the server's processes used during one measurement (warm-up included)."""

    result: LoadResult
    cores: dict[str, float]

    def us_per_request(self) -> dict[str, float]:
        rps = self.result.rps
        return {name: cores * 1e6 / rps for name, cores in self.cores.items()} if rps else {}


def with_breakdown(measure: Measure, sink: list[Breakdown]) -> Measure:
    """``measure``, also recording the CPU of each role of the server's processes."""

    def measured(target: Target, path: str, concurrency: int, duration: float, warmup: float) -> LoadResult:
        before, started = tree_cpu_seconds(target.pid) or {}, time.perf_counter()
        result = measure(target, path, concurrency, duration, warmup)
        after, elapsed = tree_cpu_seconds(target.pid) or {}, time.perf_counter() - started
        cores = dict.fromkeys(ROLES, 0.0)
        for pid, seconds in after.items():
            cores[role(pid, target.pid)] += (seconds - before.get(pid, 0.0)) / elapsed
        sink.append(Breakdown(result, cores))
        return result

    return measured


# -- rounds -------------------------------------------------------------------------


@dataclass
class Rounds:
    """Everything measured: the points, and per app its start-up times and body sizes."""

    points: list[Point]
    startup_s: dict[str, list[float]] = field(default_factory=dict)
    phases: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    body_bytes: dict[str, list[int]] = field(default_factory=dict)
    first_task_s: dict[str, list[float]] = field(default_factory=dict)
    killed: dict[str, list[str]] = field(default_factory=dict)
    sessions: list[int] = field(default_factory=list)
    breakdowns: list[Breakdown] = field(default_factory=list)

    def roles(self, point: Point, app: str) -> dict[str, float]:
        """Median server CPU µs per request of each role over the kept runs of ``point`` on ``app``."""
        kept = point.runs.get(app, [])
        found = [b.us_per_request() for b in self.breakdowns if any(b.result is r for r in kept)]
        found = [f for f in found if f]
        return {name: statistics.median(f[name] for f in found) for name in ROLES} if found else {}


def run_rounds(rounds: Rounds, measure: Measure, options: ServerOptions, logs: Path, args: argparse.Namespace) -> None:
    """``--runs`` rounds; in each, every app in turn (order alternating): start, check, measure all, stop."""
    measure = with_breakdown(measure, rounds.breakdowns)
    for run in range(args.runs):
        order = APPS if run % 2 == 0 else APPS[::-1]
        for spec in order:
            if spec.key not in args.apps:
                continue
            note = f"run {run + 1}/{args.runs}"
            print(f"  starting {spec.label} ({note}) ...", file=sys.stderr, flush=True)
            log_path = logs / f"{spec.key}-{run + 1}.log"
            with running(spec, options, logs, log_path) as server:
                rounds.sessions.append(server.process.pid)
                print(f"  {spec.label}: first 200 after {server.startup_s:.1f} s", file=sys.stderr, flush=True)
                rounds.startup_s.setdefault(spec.key, []).append(server.startup_s)
                size, first_task = check_answers(server)
                rounds.body_bytes.setdefault(spec.key, []).append(size)
                rounds.first_task_s.setdefault(spec.key, []).append(first_task)
                for point in rounds.points:
                    measure_point(measure, server.target, point, spec.key, spec.label, note, args)
            rounds.killed.setdefault(spec.key, []).extend(server.killed)
            rounds.phases.setdefault(spec.key, []).append(server.phases)


# -- reporting ----------------------------------------------------------------------


def render_startup(rounds: Rounds) -> str:
    """Time from process start to the first 200 on the trivial route, and to each milestone before it."""
    names = [key for key, _ in MILESTONES]
    lines = [
        "| app | first 200 after (median) | min | max | runs | Ray started | Serve started | app deployed "
        "| first blocking request | trivial body bytes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, label in LABELS:
        times = rounds.startup_s.get(key)
        if not times:
            continue
        sizes = sorted(set(rounds.body_bytes.get(key, [])))
        phases = rounds.phases.get(key, [])
        marks = []
        for name in names:
            seen = [p[name] for p in phases if name in p]
            marks.append(f"{statistics.median(seen):.1f} s" if seen else "n/a")
        first = rounds.first_task_s.get(key)
        marks.append(f"{statistics.median(first):.2f} s" if first else "n/a")
        lines.append(
            f"| {label} | {statistics.median(times):.1f} s | {min(times):.1f} s | {max(times):.1f} s "
            f"| {len(times)} | {' | '.join(marks)} | {', '.join(map(str, sizes))} |"
        )
    return "\n".join(lines)


def render_roles(rounds: Rounds) -> str:
    """Server CPU µs per request by process role (medians), where the two apps spend differently."""
    lines = [
        f"| scenario | concurrency | app | {' | '.join(ROLES)} | total |",
        f"| --- | ---: | --- | {' | '.join('---:' for _ in ROLES)} | ---: |",
    ]
    for point in rounds.points:
        for key, label in LABELS:
            found = rounds.roles(point, key)
            if found:
                cells = " | ".join(f"{found[name]:,.0f}" for name in ROLES)
                lines.append(
                    f"| {point.scenario} | {point.concurrency} | {label} | {cells} | {sum(found.values()):,.0f} |"
                )
    return "\n".join(lines)


def paired_ratio(point: Point) -> float | None:
    """Median over the rounds of FrameX's req/s over the hand-written app's in the same round."""
    pairs = zip(point.runs.get("framex", []), point.runs.get("serve", []), strict=False)
    ratios = [a.rps / b.rps for a, b in pairs if b.rps]
    return statistics.median(ratios) if ratios else None


def summarize(rounds: Rounds, args: argparse.Namespace, foreign: list[str]) -> list[str]:
    """The verdicts printed under the tables."""
    points = rounds.points
    notes: list[str] = []
    for scenario in args.scenarios:
        mine = [p for p in points if p.scenario == scenario]
        ratios = [r for p in mine if (r := p.ratio("framex", "serve")) is not None]
        costs = [
            a / b
            for p in mine
            if (a := p.median("framex", "server_us_per_request")) and (b := p.median("serve", "server_us_per_request"))
        ]
        paired = [f"{r:.2f}x" for p in mine if (r := paired_ratio(p)) is not None]
        if ratios:
            verdict = "meets" if min(ratios) >= TARGET else "is BELOW"
            notes.append(
                f"{scenario}: lowest req/s ratio {min(ratios):.3f}x {verdict} the {TARGET}x target (per point, "
                f"median of the per-round ratios: {', '.join(paired) or 'n/a'}); server CPU per request "
                f"FrameX / hand-written: {', '.join(f'{c:.2f}x' for c in costs) or 'n/a'}"
            )
    if "blocking" in args.scenarios and args.blocking_ms > 0:
        ceiling = args.num_cpus * 1000 / args.blocking_ms
        notes.append(
            f"blocking: each job is a Ray task reserving 1 CPU, so at most {args.num_cpus} run at once: "
            f"ceiling {args.num_cpus} / {args.blocking_ms} ms = {ceiling:,.0f} req/s for both"
        )
    sizes = {key: set(v) for key, v in rounds.body_bytes.items()}
    if len({frozenset(s) for s in sizes.values()}) > 1:
        notes.append(f"trivial bodies differ in size: {sizes}")
    notes += measurement_notes(points, args.retries)
    for key, killed in rounds.killed.items():
        if killed:
            notes.append(f"{key}: {len(killed)} process(es) outlived the server and were killed")
    if foreign:
        notes.append(
            f"{len(foreign)} Ray process(es) of someone else ran on the machine during the benchmark "
            "(their CPU use counts as other load)"
        )
    return notes


# -- main ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.http_ray",
        description="Compare FrameX on Ray Serve with a hand-written Ray Serve app (req/s, p99, start-up).",
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
    parser.add_argument("--blocking-ms", type=int, default=50, help="how long each blocking Ray task sleeps (50)")
    parser.add_argument("--scenarios", nargs="+", choices=["trivial", "blocking"], default=["trivial", "blocking"])
    parser.add_argument("--apps", nargs="+", choices=[s.key for s in APPS], default=[s.key for s in APPS])
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of each server's private Ray instance (2)")
    parser.add_argument(
        "--max-ongoing-requests", type=int, default=100, help="per replica, every deployment of both apps (100)"
    )
    parser.add_argument("--log-dir", type=Path, help="keep the servers' logs here (default: a temporary directory)")
    args = parser.parse_args(argv)
    apply_profile(args, QUICK if args.quick else FULL)
    check_load_options(parser, args, [*args.concurrency, *args.blocking_concurrency])
    if args.num_cpus < 1 or args.max_ongoing_requests < 1 or args.blocking_ms < 0:
        parser.error("need --num-cpus >= 1, --max-ongoing-requests >= 1 and --blocking-ms >= 0")
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM: stop the servers on the way out, as for Ctrl-C


def main(argv: list[str] | None = None) -> int:
    """Run every round, print the tables, write the JSON file."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    loadgen, measure = pick_loadgen(args.loadgen)
    scenarios = {
        "trivial": (TRIVIAL, args.concurrency),
        "blocking": (f"{BLOCKING}?ms={args.blocking_ms}", args.blocking_concurrency),
    }
    rounds = Rounds(
        [Point(name, path, c) for name in args.scenarios for path, levels in [scenarios[name]] for c in levels]
    )
    options = ServerOptions(args.num_cpus, args.max_ongoing_requests)
    foreign = {pid: cmd for pid, cmd in ray_processes()}
    print(
        f"load generator: {'wrk' if loadgen == 'wrk' else 'python (bench/loadgen.py)'}; Ray: private, "
        f"{args.num_cpus} CPUs, 127.0.0.1; {args.runs} round(s), each app {args.duration:g} s "
        f"(+{args.warmup:g} s warm-up) per point"
        + (f"; {len(foreign)} Ray process(es) of someone else running" if foreign else ""),
        file=sys.stderr,
    )

    started = time.time()
    with contextlib.ExitStack() as stack:
        if args.log_dir is not None:
            logs = args.log_dir.resolve()
            logs.mkdir(parents=True, exist_ok=True)
        else:
            logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="framex-bench-ray-")))
        run_rounds(rounds, measure, options, logs, args)
    foreign.update((pid, cmd) for pid, cmd in ray_processes(rounds.sessions))
    left = [f"{pid} {cmd[:100]}" for sid in rounds.sessions for pid, cmd in session_processes(sid)]
    if left:
        print(f"warning: processes of the servers still running: {left}", file=sys.stderr)

    table, diagnostics, roles, startup = (
        render_table(rounds.points, LABELS),
        render_diagnostics(rounds.points, LABELS),
        render_roles(rounds),
        render_startup(rounds),
    )
    notes = summarize(rounds, args, [f"{pid} {cmd[:100]}" for pid, cmd in foreign.items()])
    print_results(table, diagnostics, roles, startup, notes=notes)

    report = {
        "command": command_line("bench.http_ray", argv),
        "started": timestamp(started),
        "seconds": round(time.time() - started, 1),
        "settings": {
            "duration": args.duration,
            "warmup": args.warmup,
            "runs": args.runs,
            "blocking_ms": args.blocking_ms,
            "retries": args.retries,
            "other_load_limit": OTHER_LOAD_LIMIT,
            "load_generator": loadgen,
            "ray": {"num_cpus": args.num_cpus, "address": "local (private)", "node_ip": HOST},
            "deployments": {
                "num_replicas": 1,
                "max_ongoing_requests": args.max_ongoing_requests,
                "ray_actor_options": {"num_cpus": 0},
            },
            "server_cpu": "the server process and all its descendants (Ray's processes)",
        },
        "machine": machine(),
        "versions": versions("framex", "ray", "fastapi", "starlette", "uvicorn", "pydantic"),
        "source": source_state(),
        "startup_seconds": rounds.startup_s,
        "startup_phases_seconds": rounds.phases,
        "first_blocking_request_seconds": rounds.first_task_s,
        "trivial_body_bytes": rounds.body_bytes,
        "leftover_processes_killed": rounds.killed,
        "processes_left_at_exit": left,
        "foreign_ray_processes": len(foreign),
        "notes": notes,
        "points": [
            {
                **p.to_dict("framex", "serve"),
                "server_us_per_request_by_role": {k: rounds.roles(p, k) for k, _ in LABELS},
            }
            for p in rounds.points
        ],
        "table": table,
        "roles_table": roles,
        "startup_table": startup,
    }
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    run_cli(main, "interrupted; the servers were stopped")
