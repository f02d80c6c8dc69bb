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
import http.client
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.loadgen import LoadResult, cpu_shares, usage

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "http_local.json"
WRK_SCRIPT = Path(__file__).with_name("wrk_report.lua")
TRIVIAL_TARGET = 0.85
"""FrameX should serve at least this share of plain FastAPI's requests/s on the trivial route."""

OTHER_LOAD_LIMIT = 0.2
"""Cores used by other processes during a measurement above which it is flagged as disturbed."""
RETRY_PAUSE = 2.0
"""Seconds to wait before measuring again after a disturbed measurement."""

FULL = {"duration": 5.0, "warmup": 1.0, "runs": 3, "concurrency": [1, 16, 64], "blocking_concurrency": [16, 64, 128]}
QUICK = {"duration": 1.0, "warmup": 0.3, "runs": 1, "concurrency": [1, 8], "blocking_concurrency": [8]}

Measure = Callable[["Server", str, int, float, float], LoadResult]


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


@dataclass(frozen=True)
class ServerOptions:
    """What both uvicorn processes share."""

    max_workers: int
    loop: str
    http: str


@dataclass
class Server:
    """A running uvicorn process serving one app."""

    spec: AppSpec
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass
class Point:
    """One scenario at one concurrency: every run of every app."""

    scenario: str
    path: str
    concurrency: int
    runs: dict[str, list[LoadResult]] = field(default_factory=dict)

    def median(self, app: str, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.runs.get(app, [])]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def errors(self, app: str) -> int:
        return sum(r.errors for r in self.runs.get(app, []))

    def ratio(self) -> float | None:
        framex, fastapi = self.median("framex", "rps"), self.median("fastapi", "rps")
        return framex / fastapi if framex is not None and fastapi else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "path": self.path,
            "concurrency": self.concurrency,
            "ratio": self.ratio(),
            "apps": {
                app: {
                    "median_rps": self.median(app, "rps"),
                    "median_p50_ms": self.median(app, "p50_ms"),
                    "median_p99_ms": self.median(app, "p99_ms"),
                    "median_server_cpu": self.median(app, "server_cpu"),
                    "median_server_us_per_request": self.median(app, "server_us_per_request"),
                    "errors": self.errors(app),
                    "runs": [r.to_dict() for r in results],
                }
                for app, results in self.runs.items()
            },
        }


# -- servers ------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(max_workers: int) -> dict[str, str]:
    """The environment of a server: ours without FrameX configuration, plus the pool size."""
    env = {k: v for k, v in os.environ.items() if k != "FRAMEX_CONFIG" and not k.startswith("FRAMEX__")}
    env["BENCH_MAX_WORKERS"] = str(max_workers)
    env.pop("PYTHONPATH", None)  # `--app-dir` puts this checkout first on sys.path
    return env


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """One GET on a fresh connection: status and body."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(server: Server, path: str, timeout: float) -> None:
    """Poll ``GET path`` until it answers 200; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.spec.label} server exited with code {server.process.returncode}:\n{server.log_tail()}"
            )
        with contextlib.suppress(OSError, http.client.HTTPException):
            if http_get(server.port, path, timeout=1.0)[0] == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{server.spec.label} server not ready after {timeout:.0f} s:\n{server.log_tail()}")
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if the process is still there after ``timeout`` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running(spec: AppSpec, options: ServerOptions, workdir: Path, ready_path: str) -> Iterator[Server]:
    """Start ``spec`` under uvicorn in ``workdir`` (no ``config/local.yaml`` there); stop it on exit."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        spec.target,
        "--app-dir",
        str(ROOT),
        "--host",
        HOST,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "--loop",
        options.loop,
        "--http",
        options.http,
    ]
    log_path = workdir / f"{spec.key}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=workdir, env=server_env(options.max_workers), stdout=log, stderr=subprocess.STDOUT
        )
    server = Server(spec, port, process, log_path)
    try:
        wait_ready(server, ready_path, timeout=60.0)
        yield server
    finally:
        stop(process)


def check_answers(server: Server, trivial: str, blocking: str) -> None:
    """Both routes answer 200 with the handler's result before anything is measured."""
    for path, expected in ((trivial, {"ok": True}), (f"{blocking}?ms=1", 1)):
        status, body = http_get(server.port, path)
        got = server.spec.unwrap(json.loads(body)) if status == 200 else None
        if got != expected:
            raise RuntimeError(f"{server.spec.label} GET {path}: status {status}, body {body[:200]!r}")


# -- load generators ----------------------------------------------------------------


def run_python_loadgen(server: Server, path: str, concurrency: int, duration: float, warmup: float) -> LoadResult:
    """Measure with ``bench.loadgen`` in its own process."""
    command = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--host",
        HOST,
        "--port",
        str(server.port),
        "--path",
        path,
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--server-pid",
        str(server.process.pid),
    ]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=duration + warmup + 60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}):\n{done.stderr.strip()}")
    return LoadResult.from_dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _wrk(server: Server, path: str, concurrency: int, seconds: int) -> dict[str, Any]:
    command = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{seconds}s",
        "--timeout",
        "30s",
        "-s",
        str(WRK_SCRIPT),
        f"http://{HOST}:{server.port}{path}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    report = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not report:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    summary: dict[str, Any] = json.loads(report[-1])
    return summary


def run_wrk(server: Server, path: str, concurrency: int, duration: float, warmup: float) -> LoadResult:
    """Measure with wrk (one thread; wrk takes whole seconds, so both times are rounded up)."""
    if warmup > 0:
        _wrk(server, path, concurrency, max(1, round(warmup)))
    before = usage(server.process.pid, _children_cpu_seconds)
    summary = _wrk(server, path, concurrency, max(1, round(duration)))
    after = usage(server.process.pid, _children_cpu_seconds)
    status_errors = int(summary["status_errors"])
    return LoadResult(
        generator="wrk",
        concurrency=concurrency,
        seconds=summary["duration_us"] / 1e6,
        ok=int(summary["requests"]) - status_errors,
        errors=status_errors + int(summary["socket_errors"]),
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        max_ms=summary["max_us"] / 1000,
        **cpu_shares(before, after),
    )


def _children_cpu_seconds() -> float:
    """CPU seconds of the finished children (the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- reporting ----------------------------------------------------------------------


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def render_table(points: list[Point]) -> str:
    """The Markdown table of medians."""
    lines = [
        "| scenario | concurrency | FrameX req/s | FastAPI req/s | ratio | FrameX p99 ms | FastAPI p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in points:
        ratio = p.ratio()
        lines.append(
            f"| {p.scenario} | {p.concurrency} | {_num(p.median('framex', 'rps'), ',.0f')} "
            f"| {_num(p.median('fastapi', 'rps'), ',.0f')} | {_num(ratio, '.2f')}{'x' if ratio else ''} "
            f"| {_num(p.median('framex', 'p99_ms'), '.2f')} | {_num(p.median('fastapi', 'p99_ms'), '.2f')} |"
        )
    return "\n".join(lines)


def render_diagnostics(points: list[Point]) -> str:
    """Where the CPU went (cores, and server CPU µs per request; medians), the worst interference, the errors.

    ``other load`` is what the rest of the machine used meanwhile: above ~0.2 core the
    numbers of that point are disturbed (2 cores: one for the server, one for the client).
    """
    lines = [
        "| scenario | concurrency | server CPU FrameX / FastAPI | server µs/request FrameX / FastAPI "
        "| loadgen CPU | max other load | max steal | errors FrameX / FastAPI |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in points:
        results = [r for rs in p.runs.values() for r in rs]
        lines.append(
            f"| {p.scenario} | {p.concurrency} | {_num(p.median('framex', 'server_cpu'), '.2f')} / "
            f"{_num(p.median('fastapi', 'server_cpu'), '.2f')} "
            f"| {_num(p.median('framex', 'server_us_per_request'), '.0f')} / "
            f"{_num(p.median('fastapi', 'server_us_per_request'), '.0f')} "
            f"| {_num(_worst(results, 'client_cpu'), '.2f')} "
            f"| {_num(_worst(results, 'other_cpu'), '.2f')} | {_num(_worst(results, 'steal'), '.0%')} "
            f"| {p.errors('framex')} / {p.errors('fastapi')} |"
        )
    return "\n".join(lines)


def disturbed(result: LoadResult) -> bool:
    """Whether other processes used enough CPU during ``result`` to skew it."""
    return (result.other_cpu or 0.0) > OTHER_LOAD_LIMIT


def _worst(results: list[LoadResult], attr: str) -> float | None:
    values = [v for r in results if (v := getattr(r, attr)) is not None]
    return max(values) if values else None


def resolved_server_stack(loop: str, http: str) -> dict[str, str]:
    """What uvicorn's ``auto`` picks here (uvloop / httptools when installed)."""
    if loop == "auto":
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return {"loop": loop, "http": http}


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("framex", "fastapi", "starlette", "uvicorn", "pydantic", "uvloop", "httptools", "h11"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


# -- main ---------------------------------------------------------------------------


def measure_all(points: list[Point], servers: dict[str, Server], measure: Measure, args: argparse.Namespace) -> None:
    """Fill every point: ``--runs`` rounds, the apps alternating within each round.

    A measurement that other processes disturbed is taken again (up to ``--retries``
    times) and the least disturbed attempt is kept.
    """
    for point in points:
        for run in range(args.runs):
            for spec in APPS:
                attempts: list[LoadResult] = []
                while len(attempts) <= args.retries:
                    result = measure(servers[spec.key], point.path, point.concurrency, args.duration, args.warmup)
                    attempts.append(result)
                    print(
                        f"  {point.scenario:8} c={point.concurrency:<4} run {run + 1}/{args.runs} "
                        f"{spec.label:7} {result.rps:9,.0f} req/s  p99 {result.p99_ms:8.2f} ms  "
                        f"errors {result.errors}  server {_num(result.server_cpu, '.2f')} "
                        f"other {_num(result.other_cpu, '.2f')} steal {_num(result.steal, '.0%')}"
                        f"{'  (disturbed)' if disturbed(result) else ''}",
                        file=sys.stderr,
                        flush=True,
                    )
                    if not disturbed(result):
                        break
                    if len(attempts) <= args.retries:
                        time.sleep(RETRY_PAUSE)  # let a burst of other work pass
                point.runs.setdefault(spec.key, []).append(min(attempts, key=lambda r: r.other_cpu or 0.0))


def summarize(points: list[Point], args: argparse.Namespace) -> list[str]:
    """The verdicts printed under the tables."""
    notes: list[str] = []
    trivial_ratios = [r for p in points if p.scenario == "trivial" and (r := p.ratio()) is not None]
    if trivial_ratios:
        verdict = "meets" if min(trivial_ratios) >= TRIVIAL_TARGET else "is BELOW"
        notes.append(f"trivial: lowest ratio {min(trivial_ratios):.3f}x {verdict} the {TRIVIAL_TARGET}x target")
    if "blocking" in args.scenarios and args.blocking_ms > 0:
        ceiling = args.max_workers * 1000 / args.blocking_ms
        notes.append(
            f"blocking: pool ceiling {args.max_workers} workers / {args.blocking_ms} ms = {ceiling:,.0f} req/s"
        )
    kept_disturbed = sum(1 for p in points for rs in p.runs.values() for r in rs if disturbed(r))
    if kept_disturbed:
        notes.append(
            f"{kept_disturbed} measurement(s) ran while other processes used > {OTHER_LOAD_LIMIT} core "
            f"even after {args.retries} retries: rerun on a quiet machine before trusting small differences"
        )
    if any(p.errors(app) for p in points for app in p.runs):
        notes.append("some responses were not 200 (see the errors column)")
    return notes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.http_local",
        description="Compare FrameX with plain FastAPI over loopback (requests/s and p99 latency).",
    )
    parser.add_argument("--duration", type=float, help=f"seconds per measurement (default {FULL['duration']})")
    parser.add_argument("--warmup", type=float, help=f"seconds of load before each measurement ({FULL['warmup']})")
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
    parser.add_argument(
        "--runs", type=int, help=f"measurements per app and point; the median is reported ({FULL['runs']})"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help=f"times a measurement is taken again when other processes used > {OTHER_LOAD_LIMIT} core (2)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run (explicit options still win)")
    parser.add_argument("--scenarios", nargs="+", choices=["trivial", "blocking"], default=["trivial", "blocking"])
    parser.add_argument(
        "--loadgen",
        choices=["auto", "python", "wrk"],
        default="auto",
        help="auto: wrk when it is on PATH, else the Python generator (bench/loadgen.py)",
    )
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto", help="uvicorn --loop (both)")
    parser.add_argument("--http", choices=["auto", "h11", "httptools"], default="auto", help="uvicorn --http (both)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON results")
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL
    for name, value in profile.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if (
        args.duration <= 0
        or args.warmup < 0
        or args.runs < 1
        or args.max_workers < 1
        or args.blocking_ms < 0
        or args.retries < 0
    ):
        parser.error(
            "need --duration > 0, --warmup >= 0, --runs >= 1, --max-workers >= 1, --blocking-ms >= 0, --retries >= 0"
        )
    if min(args.concurrency + args.blocking_concurrency) < 1:
        parser.error("concurrency levels must be >= 1")
    if args.loadgen == "wrk" and shutil.which("wrk") is None:
        parser.error("--loadgen wrk: wrk is not on PATH (apt-get install -y wrk)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every measurement, print the tables, write the JSON file."""
    args = parse_args(argv)
    use_wrk = args.loadgen == "wrk" or (args.loadgen == "auto" and shutil.which("wrk") is not None)
    measure = run_wrk if use_wrk else run_python_loadgen
    trivial_path, blocking_path = "/api/v1/trivial", "/api/v1/blocking"
    scenarios = {
        "trivial": (trivial_path, args.concurrency),
        "blocking": (f"{blocking_path}?ms={args.blocking_ms}", args.blocking_concurrency),
    }
    points = [Point(name, path, c) for name in args.scenarios for path, levels in [scenarios[name]] for c in levels]
    options = ServerOptions(args.max_workers, args.loop, args.http)
    stack = resolved_server_stack(args.loop, args.http)
    print(
        f"load generator: {'wrk' if use_wrk else 'python (bench/loadgen.py)'}; uvicorn loop={stack['loop']} "
        f"http={stack['http']}; max_workers={args.max_workers}; {args.runs} run(s) x {args.duration:g} s "
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

    table, diagnostics = render_table(points), render_diagnostics(points)
    print(table)
    print()
    print(diagnostics)
    notes = summarize(points, args)
    print()
    for note in notes:
        print(f"- {note}")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": " ".join(["python -m bench.http_local", *(argv if argv is not None else sys.argv[1:])]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "settings": {
            "duration": args.duration,
            "warmup": args.warmup,
            "runs": args.runs,
            "max_workers": args.max_workers,
            "blocking_ms": args.blocking_ms,
            "retries": args.retries,
            "other_load_limit": OTHER_LOAD_LIMIT,
            "load_generator": "wrk" if use_wrk else "python",
            "uvicorn": {"loop": args.loop, "http": args.http, "resolved": stack, "workers": 1},
        },
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": versions(),
        "notes": notes,
        "points": [p.to_dict() for p in points],
        "table": table,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults: {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("interrupted; the servers were stopped", file=sys.stderr)
        raise SystemExit(130) from None
