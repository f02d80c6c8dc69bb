"""What the benchmarks share: loopback servers, load generators, interference checks, tables.

``bench.http_local`` and ``bench.http_ray`` drive HTTP servers with ``bench/loadgen.py``
or wrk and report medians; ``bench.ray_remote`` uses the CPU accounting and the reporting
helpers. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import importlib.metadata
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
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.loadgen import LoadResult, cpu_shares, usage

HOST = "127.0.0.1"
T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WRK_SCRIPT = Path(__file__).with_name("wrk_report.lua")

OTHER_LOAD_LIMIT = 0.2
"""Cores used by other processes during a measurement above which it is flagged as disturbed."""
RETRY_PAUSE = 2.0
"""Seconds to wait before measuring again after a disturbed measurement."""


@dataclass(frozen=True)
class Target:
    """What a load generator drives: a loopback port, and the server process whose CPU is counted."""

    port: int
    pid: int
    tree: bool = False
    """Count the server's descendants too (a Ray server: raylet, GCS, replicas, task workers)."""


Measure = Callable[[Target, str, int, float, float], LoadResult]
"""``measure(target, path, concurrency, duration, warmup)``: one measurement."""


# -- processes ----------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """One GET on a fresh connection: status and body."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a server's log file ("" when unreadable)."""
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def wait_for_200(
    port: int,
    path: str,
    process: subprocess.Popen[bytes],
    label: str,
    timeout: float,
    tail: Callable[[], str],
    interval: float = 0.05,
) -> None:
    """Poll ``GET path`` until it answers 200; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{label} server exited with code {process.returncode}:\n{tail()}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if http_get(port, path, timeout=1.0)[0] == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{label} server not ready after {timeout:.0f} s:\n{tail()}")
        time.sleep(interval)


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


def session_processes(sid: int) -> list[tuple[int, str]]:
    """Live (not zombie) processes of session ``sid``: pid and command line."""
    out = subprocess.run(["ps", "-eo", "sid=,pid=,stat=,args="], capture_output=True, text=True, check=False).stdout
    alive = []
    for line in out.splitlines():
        fields = line.split(None, 3)
        if len(fields) == 4 and fields[0] == str(sid) and not fields[2].startswith("Z"):
            alive.append((int(fields[1]), fields[3]))
    return alive


def ray_processes(exclude_sids: Iterable[int] = ()) -> list[tuple[int, str]]:
    """Ray processes on the machine (raylet, GCS, ``ray::`` workers) outside the given sessions."""
    skip = {str(s) for s in exclude_sids}
    out = subprocess.run(["ps", "-eo", "sid=,pid=,stat=,args="], capture_output=True, text=True, check=False).stdout
    found = []
    for line in out.splitlines():
        fields = line.split(None, 3)
        if len(fields) < 4 or fields[0] in skip or fields[2].startswith("Z"):
            continue
        args = fields[3]
        if args.startswith("ray::") or "/ray/core/src/ray/" in args or "/site-packages/ray/" in args:
            found.append((int(fields[1]), args))
    return found


def stop_session(process: subprocess.Popen[bytes], timeout: float = 60.0, grace: float = 20.0) -> list[str]:
    """Stop a server started with ``start_new_session=True`` and everything it started.

    SIGTERM to the server, SIGKILL after ``timeout`` s; then wait up to ``grace`` s for
    the rest of its session (Ray's processes) to exit, and SIGKILL what is still there.
    Returns the command lines that had to be killed that way (empty: a clean stop).
    """
    sid = process.pid
    stop(process, timeout)
    deadline = time.monotonic() + grace
    while (left := session_processes(sid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    killed = []
    for pid, args in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            killed.append(f"{pid} {args[:120]}")
    return killed


# -- load generators ----------------------------------------------------------------


def run_python_loadgen(target: Target, path: str, concurrency: int, duration: float, warmup: float) -> LoadResult:
    """Measure with ``bench.loadgen`` in its own process."""
    command = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--host",
        HOST,
        "--port",
        str(target.port),
        "--path",
        path,
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--server-pid",
        str(target.pid),
        *(["--server-tree"] if target.tree else []),
    ]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=duration + warmup + 60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}):\n{done.stderr.strip()}")
    return LoadResult.from_dict(json.loads(done.stdout.strip().splitlines()[-1]))


def wrk_command(
    port: int, path: str, concurrency: int, seconds: int, headers: Sequence[str] = (), script: Path = WRK_SCRIPT
) -> list[str]:
    """The wrk command line of one measurement (one thread; its summary as JSON, see :func:`wrk_summary`).

    ``script``: a Lua script with ``wrk_report.lua``'s ``done`` in it (wrk takes one script)."""
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "30s"]
    for header in headers:
        command += ["-H", header]
    return [*command, "-s", str(script), f"http://{HOST}:{port}{path}"]


def wrk_summary(returncode: int, stdout: str, stderr: str) -> dict[str, Any]:
    """The JSON summary ``wrk_report.lua`` printed; RuntimeError when wrk failed."""
    report = [line for line in stdout.splitlines() if line.startswith("{")]
    if returncode != 0 or not report:
        raise RuntimeError(f"wrk failed ({returncode}):\n{stdout}\n{stderr}")
    summary: dict[str, Any] = json.loads(report[-1])
    return summary


def wrk_result(summary: dict[str, Any], concurrency: int, shares: dict[str, float | None]) -> LoadResult:
    """A :class:`LoadResult` from a wrk summary and the CPU shares of its window."""
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
        **shares,
    )


def _wrk(
    target: Target, path: str, concurrency: int, seconds: int, headers: Sequence[str] = (), script: Path = WRK_SCRIPT
) -> dict[str, Any]:
    command = wrk_command(target.port, path, concurrency, seconds, headers, script)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    return wrk_summary(done.returncode, done.stdout, done.stderr)


def run_wrk(
    target: Target,
    path: str,
    concurrency: int,
    duration: float,
    warmup: float,
    headers: Sequence[str] = (),
    script: Path = WRK_SCRIPT,
) -> LoadResult:
    """Measure with wrk (one thread; wrk takes whole seconds, so both times are rounded up),
    sending ``headers`` (``"Name: value"``) with every request; ``script`` as in :func:`wrk_command`."""
    if warmup > 0:
        _wrk(target, path, concurrency, max(1, round(warmup)), headers, script)
    before = usage(target.pid, children_cpu_seconds, target.tree)
    summary = _wrk(target, path, concurrency, max(1, round(duration)), headers, script)
    after = usage(target.pid, children_cpu_seconds, target.tree)
    return wrk_result(summary, concurrency, cpu_shares(before, after))


def children_cpu_seconds() -> float:
    """CPU seconds of the finished children (the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pick_loadgen(choice: str) -> tuple[str, Measure]:
    """``auto``: wrk when it is on PATH, else the Python generator. Returns its name and function."""
    if choice == "wrk" or (choice == "auto" and shutil.which("wrk") is not None):
        return "wrk", run_wrk
    return "python", run_python_loadgen


# -- measurements -------------------------------------------------------------------


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

    def ratio(self, app: str, base: str) -> float | None:
        """Median req/s of ``app`` over the median req/s of ``base``."""
        mine, theirs = self.median(app, "rps"), self.median(base, "rps")
        return mine / theirs if mine is not None and theirs else None

    def to_dict(self, app: str, base: str) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "path": self.path,
            "concurrency": self.concurrency,
            "ratio": self.ratio(app, base),
            "apps": {
                key: {
                    "median_rps": self.median(key, "rps"),
                    "median_p50_ms": self.median(key, "p50_ms"),
                    "median_p99_ms": self.median(key, "p99_ms"),
                    "median_server_cpu": self.median(key, "server_cpu"),
                    "median_server_us_per_request": self.median(key, "server_us_per_request"),
                    "errors": self.errors(key),
                    "runs": [r.to_dict() for r in results],
                }
                for key, results in self.runs.items()
            },
        }


def measurement_notes(points: Sequence[Point], retries: int) -> list[str]:
    """The notes every HTTP benchmark ends with: measurements kept although disturbed, errors."""
    notes: list[str] = []
    kept = sum(1 for p in points for rs in p.runs.values() for r in rs if disturbed(r.other_cpu))
    if kept:
        notes.append(
            f"{kept} measurement(s) ran while other processes used > {OTHER_LOAD_LIMIT} core even after "
            f"{retries} retries: compare server µs/request, or rerun on a quiet machine"
        )
    if any(p.errors(app) for p in points for app in p.runs):
        notes.append("some responses were not 200 (see the errors column)")
    return notes


def add_server_options(parser: argparse.ArgumentParser, pool: bool = True) -> None:
    """``--loop`` and ``--http`` of uvicorn (and ``--max-workers``, the thread pool) for every server."""
    if pool:
        parser.add_argument("--max-workers", type=int, default=32, help="thread pool size of the servers (32)")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto", help="uvicorn --loop")
    parser.add_argument("--http", choices=["auto", "h11", "httptools"], default="auto", help="uvicorn --http")


def paired_ratios(point: Point, app: str, base: str) -> list[float]:
    """``app`` / ``base`` req/s of each run: the two measurements of a run are taken back to
    back, so load that comes and goes between runs cancels out of each ratio."""
    mine, theirs = point.runs.get(app, []), point.runs.get(base, [])
    return [a.rps / b.rps for a, b in zip(mine, theirs, strict=False) if b.rps]


def paired_note(point: Point, app: str, base: str) -> str | None:
    """The note reporting :func:`paired_ratios` of ``point`` (None without runs)."""
    paired = paired_ratios(point, app, base)
    if not paired:
        return None
    return (
        f"c={point.concurrency}: median of the {len(paired)} back-to-back {app}/{base} ratios "
        f"{statistics.median(paired):.3f}x (range {min(paired):.2f}-{max(paired):.2f}; less sensitive "
        "to load that comes and goes than the ratio of medians)"
    )


def disturbed(other_cpu: float | None) -> bool:
    """Whether other processes used enough CPU (cores) during a measurement to skew it."""
    return (other_cpu or 0.0) > OTHER_LOAD_LIMIT


def least_disturbed(measure: Callable[[], T], other_load: Callable[[T], float | None], retries: int) -> T:
    """``measure()`` once, and again (up to ``retries`` times) while other processes
    disturbed it (``other_load`` of the result, in cores); the least disturbed result."""
    attempts: list[T] = []
    while len(attempts) <= retries:
        attempts.append(measure())
        if not disturbed(other_load(attempts[-1])):
            break
        if len(attempts) <= retries:
            time.sleep(RETRY_PAUSE)  # let a burst of other work pass
    return min(attempts, key=lambda result: other_load(result) or 0.0)


def measure_point(
    measure: Measure,
    target: Target,
    point: Point,
    key: str,
    label: str,
    run_note: str,
    args: argparse.Namespace,
) -> LoadResult:
    """Measure ``point`` on one app and add the result to it.

    A measurement that other processes disturbed is taken again (up to ``args.retries``
    times) and the least disturbed attempt is kept. Progress goes to stderr.
    """

    def attempt() -> LoadResult:
        result = measure(target, point.path, point.concurrency, args.duration, args.warmup)
        print(
            f"  {point.scenario:8} c={point.concurrency:<4} {run_note} {label:9} {result.rps:9,.0f} req/s  "
            f"p99 {result.p99_ms:8.2f} ms  errors {result.errors}  server {num(result.server_cpu, '.2f')} "
            f"other {num(result.other_cpu, '.2f')} steal {num(result.steal, '.0%')}"
            f"{'  (disturbed)' if disturbed(result.other_cpu) else ''}",
            file=sys.stderr,
            flush=True,
        )
        return result

    kept = least_disturbed(attempt, lambda result: result.other_cpu, args.retries)
    point.runs.setdefault(key, []).append(kept)
    return kept


# -- reporting ----------------------------------------------------------------------


def num(value: float | None, fmt: str) -> str:
    """``value`` formatted, or ``n/a``."""
    return "n/a" if value is None else format(value, fmt)


def worst(results: Iterable[Any], attr: str) -> float | None:
    """The largest non-None ``attr`` of ``results``."""
    values = [v for r in results if (v := getattr(r, attr)) is not None]
    return max(values) if values else None


def render_table(points: Sequence[Point], apps: Sequence[tuple[str, str]]) -> str:
    """The Markdown table of medians; ``apps`` is ``[(key, label)]``: FrameX, then the baseline."""
    (a, a_label), (b, b_label) = apps
    lines = [
        f"| scenario | concurrency | {a_label} req/s | {b_label} req/s | ratio | {a_label} p99 ms | {b_label} p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in points:
        ratio = p.ratio(a, b)
        lines.append(
            f"| {p.scenario} | {p.concurrency} | {num(p.median(a, 'rps'), ',.0f')} "
            f"| {num(p.median(b, 'rps'), ',.0f')} | {num(ratio, '.2f')}{'x' if ratio else ''} "
            f"| {num(p.median(a, 'p99_ms'), '.2f')} | {num(p.median(b, 'p99_ms'), '.2f')} |"
        )
    return "\n".join(lines)


def render_diagnostics(points: Sequence[Point], apps: Sequence[tuple[str, str]]) -> str:
    """Where the CPU went (cores, and server CPU µs per request; medians), the worst interference, the errors."""
    (a, a_label), (b, b_label) = apps
    lines = [
        f"| scenario | concurrency | server CPU {a_label} / {b_label} "
        f"| server µs/request {a_label} / {b_label} "
        f"| loadgen CPU | max other load | max steal | errors {a_label} / {b_label} |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in points:
        results = [r for rs in p.runs.values() for r in rs]
        lines.append(
            f"| {p.scenario} | {p.concurrency} | {num(p.median(a, 'server_cpu'), '.2f')} / "
            f"{num(p.median(b, 'server_cpu'), '.2f')} "
            f"| {num(p.median(a, 'server_us_per_request'), '.0f')} / "
            f"{num(p.median(b, 'server_us_per_request'), '.0f')} "
            f"| {num(worst(results, 'client_cpu'), '.2f')} "
            f"| {num(worst(results, 'other_cpu'), '.2f')} | {num(worst(results, 'steal'), '.0%')} "
            f"| {p.errors(a)} / {p.errors(b)} |"
        )
    return "\n".join(lines)


def versions(*names: str) -> dict[str, str]:
    """Python's version and the installed version of each named distribution."""
    found = {"python": platform.python_version()}
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform()}


def source_state() -> dict[str, Any]:
    """The checked-out commit and the files of ``framex/`` changed since (read-only git commands)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    changed = git("status", "--porcelain", "--", "framex")
    return {"commit": git("rev-parse", "HEAD") or None, "framex_changes": changed.splitlines()}


def timestamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds))


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write the JSON results (creating ``bench/results``) and say where on stderr."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults: {path}", file=sys.stderr)


# -- command line -------------------------------------------------------------------


def add_load_options(parser: argparse.ArgumentParser, full: dict[str, Any], output: Path) -> None:
    """The options every HTTP benchmark has; ``full`` holds the defaults of a full run."""
    parser.add_argument("--duration", type=float, help=f"seconds per measurement (default {full['duration']})")
    parser.add_argument("--warmup", type=float, help=f"seconds of load before each measurement ({full['warmup']})")
    parser.add_argument(
        "--runs", type=int, help=f"measurements per app and point; the median is reported ({full['runs']})"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help=f"times a measurement is taken again when other processes used > {OTHER_LOAD_LIMIT} core (2)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run (explicit options still win)")
    parser.add_argument(
        "--loadgen",
        choices=["auto", "python", "wrk"],
        default="auto",
        help="auto: wrk when it is on PATH, else the Python generator (bench/loadgen.py)",
    )
    parser.add_argument("--output", type=Path, default=output, help="where to write the JSON results")


def apply_profile(args: argparse.Namespace, profile: dict[str, Any]) -> None:
    """Fill the options left unset from ``profile`` (the full or the quick sizes)."""
    for name, value in profile.items():
        if getattr(args, name) is None:
            setattr(args, name, value)


def check_load_options(parser: argparse.ArgumentParser, args: argparse.Namespace, levels: Sequence[int]) -> None:
    """Reject impossible values of the shared options."""
    if args.duration <= 0 or args.warmup < 0 or args.runs < 1 or args.retries < 0:
        parser.error("need --duration > 0, --warmup >= 0, --runs >= 1, --retries >= 0")
    if levels and min(levels) < 1:
        parser.error("concurrency levels must be >= 1")
    if args.loadgen == "wrk" and shutil.which("wrk") is None:
        parser.error("--loadgen wrk: wrk is not on PATH (apt-get install -y wrk)")


# -- the suite (``python -m bench``): servers, peers, tables -------------------------


def run_cli(main: Callable[[], int], interrupted: str) -> None:
    """Exit with ``main()``'s status; on Ctrl-C say ``interrupted`` and exit with 130."""
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        raise SystemExit(130) from None


def print_results(*blocks: str, notes: Sequence[str] = ()) -> None:
    """The tables (and other blocks), one blank line apart, then the notes as a list, to stdout."""
    print("\n\n".join(blocks))
    if notes:
        print()
        for note in notes:
            print(f"- {note}")


def command_line(module: str, argv: Sequence[str] | None) -> str:
    """How the benchmark was run: ``python -m <module>`` and its arguments."""
    return " ".join([f"python -m {module}", *(argv if argv is not None else sys.argv[1:])])


def base_env(**extra: str) -> dict[str, str]:
    """A minimal environment for a server under test, plus ``extra``.

    Only what a process needs to run: settings read from the environment (``FRAMEX__*``,
    FrameX-kit's ``SERVER__*``, ``PYTHONPATH``) would otherwise leak into one app and not the others.
    """
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TERM")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, **extra}


def uvicorn_command(
    python: str, target: str, app_dir: Path, port: int, loop: str = "auto", http: str = "auto"
) -> list[str]:
    """The same uvicorn flags for every app: one worker, loopback, no access log."""
    return [
        python,
        "-m",
        "uvicorn",
        target,
        "--app-dir",
        str(app_dir),
        "--host",
        HOST,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "--loop",
        loop,
        "--http",
        http,
    ]


@contextlib.contextmanager
def serving(
    command: list[str],
    *,
    label: str,
    port: int,
    ready_path: str,
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    timeout: float = 60.0,
    cpus: set[int] | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """Start ``command``, wait for its first 200 on ``ready_path``; yield it and the seconds that took; stop it.

    With ``cpus`` the process (every thread it starts) runs on those CPUs only, in a
    session of its own: with autogroup scheduling (``kernel.sched_autogroup_enabled``,
    on by default) Linux shares a CPU between sessions, not between threads, so a server
    with more threads gets no larger share.
    """
    started = time.monotonic()
    pin = None if cpus is None else functools.partial(os.sched_setaffinity, 0, cpus)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=pin,  # runs between fork and exec: the driver starts no threads that could hold a lock
            start_new_session=cpus is not None,
        )
    try:
        wait_for_200(port, ready_path, process, label, timeout, lambda: log_tail(log_path), interval=0.01)
        yield process, time.monotonic() - started
    finally:
        stop(process)


def spread(values: Sequence[float], fmt: str) -> str:
    """``min-max`` of ``values``."""
    return f"{format(min(values), fmt)}-{format(max(values), fmt)}" if values else "n/a"


@dataclass
class Series:
    """One row of a suite table: a metric at one point, every app's runs."""

    label: str
    fmt: str
    values: dict[str, list[float]] = field(default_factory=dict)

    def median(self, app: str) -> float | None:
        found = self.values.get(app)
        return statistics.median(found) if found else None

    def ratio(self, app: str, peer: str) -> float | None:
        mine, theirs = self.median(app), self.median(peer)
        return mine / theirs if mine is not None and theirs else None


def render_peer_table(rows: Sequence[Series], apps: Sequence[tuple[str, str]]) -> str:
    """Markdown: per row each app's median (min-max over the runs), then the first app over each other app."""
    (base, base_label), peers = apps[0], apps[1:]
    lines = [
        "| metric | "
        + " | ".join(label for _, label in apps)
        + " | "
        + " | ".join(f"{base_label} ÷ {label}" for _, label in peers)
        + " |",
        "| --- | " + " | ".join("---:" for _ in (*apps, *peers)) + " |",
    ]
    for row in rows:
        cells = []
        for key, _ in apps:
            found = row.values.get(key)
            median = row.median(key)
            cells.append("n/a" if not found or median is None else f"{median:{row.fmt}} ({spread(found, row.fmt)})")
        ratios = [f"{r:.2f}x" if (r := row.ratio(base, key)) is not None else "n/a" for key, _ in peers]
        lines.append(f"| {row.label} | {' | '.join(cells)} | {' | '.join(ratios)} |")
    return "\n".join(lines)


@dataclass
class Section:
    """One scenario of the suite's report: what was measured, its table, and the raw numbers."""

    key: str
    title: str
    what: str
    table: str
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


def load_series(points: Sequence[Point], apps: Sequence[str]) -> list[Series]:
    """Rows for HTTP points: req/s, p99 and server CPU per request of every app, per point."""
    metrics = (("req/s", "rps", ",.0f"), ("p99 ms", "p99_ms", ",.1f"), ("server CPU µs/request", None, ",.0f"))
    rows = []
    for p in points:
        for name, attr, fmt in metrics:
            # A run without a single response has no latency (its p99 reads 0), but its 0 req/s counts.
            values = {
                app: [
                    v
                    for r in p.runs[app]
                    if (r.ok or attr == "rps") and (v := getattr(r, attr or "server_us_per_request")) is not None
                ]
                for app in apps
                if p.runs.get(app)
            }
            rows.append(Series(f"{p.scenario} c={p.concurrency}: {name}", fmt, values))
    return rows
