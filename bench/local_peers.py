"""The suite's local HTTP scenarios: FrameX against plain FastAPI and FrameX-kit 0.4.2.

Three uvicorn processes (same flags, see ``common.uvicorn_command``) serve the same
handlers: ``bench/apps/framex_app.py`` with ``bench_plugin`` and ``suite_plugin``,
``bench/apps/fastapi_app.py``, and ``bench/apps/kit/kit_app.py`` in FrameX-kit's own
virtualenv. A load generator in another process drives one app at a time, the apps taking
turns within each run (``common.measure_point``: a disturbed measurement is taken again).

Scenarios: ``trivial``; ``blocking`` (a 50 ms sleep behind ``@remote`` on threads) and
``process`` (the same in a worker process); ``calls`` (route A awaits plugin B's API);
``saturated`` (a fast route's p99 while blocking jobs keep every pool thread busy).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    Measure,
    Point,
    Section,
    Series,
    Target,
    base_env,
    free_port,
    http_get,
    load_series,
    measure_point,
    render_peer_table,
    serving,
    uvicorn_command,
)
from bench.kit import KIT_APPS

TRIVIAL, BLOCKING, PROCESS, CALL = "/api/v1/trivial", "/api/v1/blocking", "/api/v1/blocking_process", "/api/v1/call"
LOCAL_SCENARIOS = ("trivial", "blocking", "process", "calls", "saturated")


@dataclass(frozen=True)
class App:
    """One app under test: how uvicorn finds it, and what it serves."""

    key: str
    label: str
    python: str
    target: str
    app_dir: Path
    env: dict[str, str]
    unwrap: Callable[[Any], Any]
    serves: frozenset[str]


def local_apps(kit_python: Path | None, max_workers: int, max_processes: int) -> list[App]:
    """FrameX, FastAPI, and FrameX-kit when its virtualenv is there."""
    pools = {"BENCH_MAX_WORKERS": str(max_workers), "BENCH_MAX_PROCESSES": str(max_processes)}
    plugins = "bench.apps.bench_plugin,bench.apps.suite_plugin"
    apps = [
        App(
            "framex",
            "FrameX",
            sys.executable,
            "bench.apps.framex_app:app",
            ROOT,
            base_env(**pools, BENCH_PLUGINS=plugins),
            lambda body: body["data"],
            frozenset(LOCAL_SCENARIOS),
        ),
        App(
            "fastapi",
            "FastAPI",
            sys.executable,
            "bench.apps.fastapi_app:app",
            ROOT,
            base_env(**pools),
            lambda body: body,
            frozenset(LOCAL_SCENARIOS),
        ),
    ]
    if kit_python is not None:
        # No process executor in FrameX-kit's local @remote: no `process` scenario.
        kit_serves = frozenset(LOCAL_SCENARIOS) - {"process"}
        apps.append(
            App(
                "kit",
                "FrameX-kit",
                str(kit_python),
                "kit_app:app",
                KIT_APPS,
                base_env(),
                lambda body: body["data"],
                kit_serves,
            )
        )
    return apps


@dataclass
class Running:
    app: App
    port: int
    pid: int

    @property
    def target(self) -> Target:
        return Target(self.port, self.pid, tree=True)  # worker processes count as the server's CPU


def check_answers(server: Running) -> None:
    """Every route the app serves answers 200 with the handler's result before anything is measured."""
    checks = {
        "trivial": (TRIVIAL, {"ok": True}),
        "blocking": (f"{BLOCKING}?ms=1", 1),
        "process": (f"{PROCESS}?ms=1", 1),
        "calls": (CALL, {"ok": True}),
    }
    for scenario, (path, expected) in checks.items():
        if scenario not in server.app.serves:
            continue
        status, body = http_get(server.port, path, timeout=30.0)
        got = server.app.unwrap(json.loads(body)) if status == 200 else None
        if got != expected:
            raise RuntimeError(f"{server.app.label} GET {path}: status {status}, body {body[:200]!r}")


@contextlib.contextmanager
def running_apps(apps: list[App], workdir: Path) -> Iterator[list[Running]]:
    """Start every app (from ``workdir``: no ``config/local.yaml``, ``config.toml`` or ``.env`` there)."""
    with contextlib.ExitStack() as stack:
        servers = []
        for app in apps:
            port = free_port()
            command = uvicorn_command(app.python, app.target, app.app_dir, port)
            process, _ = stack.enter_context(
                serving(
                    command,
                    label=app.label,
                    port=port,
                    ready_path=TRIVIAL,
                    cwd=workdir,
                    env=app.env,
                    log_path=workdir / f"{app.key}.log",
                )
            )
            servers.append(Running(app, port, process.pid))
        for server in servers:
            check_answers(server)
        yield servers


def _rotated(servers: list[Running], run: int) -> list[Running]:
    shift = run % len(servers)
    return [*servers[shift:], *servers[:shift]]


def measure_points(points: list[Point], servers: list[Running], measure: Measure, args: argparse.Namespace) -> None:
    """``--runs`` rounds per point, the apps taking turns (the order rotating from run to run)."""
    for point in points:
        for run in range(args.runs):
            for server in _rotated(servers, run):
                if point.scenario in server.app.serves:
                    note = f"run {run + 1}/{args.runs}"
                    measure_point(measure, server.target, point, server.app.key, server.app.label, note, args)


def measure_saturated(
    fast: Point, busy: Point, servers: list[Running], measure: Measure, args: argparse.Namespace
) -> None:
    """The fast route measured while a second generator keeps ``busy.concurrency`` blocking requests in flight.

    Not taken again when disturbed: the background generator itself counts as other load.
    """
    once = argparse.Namespace(**{**vars(args), "retries": 0})
    busy_seconds = args.warmup + args.duration + 2.0
    for run in range(args.runs):
        for server in _rotated(servers, run):
            if "saturated" not in server.app.serves:
                continue
            with ThreadPoolExecutor(1) as pool:
                background = pool.submit(measure, server.target, busy.path, busy.concurrency, busy_seconds, 0.0)
                note = f"run {run + 1}/{args.runs} under load"
                measure_point(measure, server.target, fast, server.app.key, server.app.label, note, once)
                busy.runs.setdefault(server.app.key, []).append(background.result())


WHAT = {
    "trivial": '`GET /api/v1/trivial` returning `{{"ok": true}}` (FrameX and FrameX-kit wrap it in their envelope).',
    "blocking": "`GET /api/v1/blocking?ms=50`: the handler awaits a sync job sleeping 50 ms on a thread: "
    "FrameX `@remote()` on its local pool, FastAPI `asyncio.to_thread`, FrameX-kit's local `@remote()`. "
    "Both FrameX and FastAPI have {max_workers} threads, so both top out at {ceiling:,.0f} req/s.",
    "process": "`GET /api/v1/blocking_process?ms=50`: the same job in a worker process: FrameX "
    '`@remote(executor="process")`, FastAPI `run_in_executor` on a `ProcessPoolExecutor`, '
    "{max_processes} processes each (ceiling {process_ceiling:,.0f} req/s). FrameX-kit has no process executor.",
    "calls": "`GET /api/v1/call`: plugin A's route awaits plugin B's trivial API: FrameX "
    '`call_plugin_api("/api/v1/trivial")`, FrameX-kit `self._call_remote_api("/api/v1/trivial")`, '
    "FastAPI a direct `await trivial()`.",
    "saturated": "p99 of `GET /api/v1/trivial` from one connection while another generator keeps "
    "{busy_c} `GET /api/v1/blocking?ms=50` requests in flight (twice the thread pool): the event loop must stay "
    "free while every pool thread is busy. Also the blocking route's req/s meanwhile.",
}
TITLES = {
    "trivial": "Trivial route",
    "blocking": "Blocking job behind `@remote`, local threads",
    "process": "Blocking job behind `@remote`, local processes",
    "calls": "`call_plugin_api` between two plugins, over HTTP",
    "saturated": "Fast-route p99 while blocking jobs saturate the executor",
}


def run_local(
    scenarios: list[str],
    levels: dict[str, list[int]],
    kit_python: Path | None,
    measure: Measure,
    args: argparse.Namespace,
    workdir: Path,
) -> list[Section]:
    """Measure the local scenarios asked for; one report section each."""
    apps = local_apps(kit_python, args.max_workers, args.max_processes)
    paths = {"trivial": TRIVIAL, "blocking": f"{BLOCKING}?ms=50", "process": f"{PROCESS}?ms=50", "calls": CALL}
    points = {name: [Point(name, paths[name], c) for c in levels[name]] for name in scenarios if name in paths}
    busy_c = 2 * args.max_workers
    fast, busy = Point("fast route", TRIVIAL, 1), Point("blocking", f"{BLOCKING}?ms=50", busy_c)
    with running_apps(apps, workdir) as servers:
        for name, found in points.items():
            print(f"{TITLES[name]} ...", file=sys.stderr, flush=True)
            measure_points(found, servers, measure, args)
        if "saturated" in scenarios:
            print(f"{TITLES['saturated']} ...", file=sys.stderr, flush=True)
            measure_saturated(fast, busy, servers, measure, args)

    labels = [(a.key, a.label) for a in apps]
    facts = {
        "max_workers": args.max_workers,
        "ceiling": args.max_workers / 0.05,
        "max_processes": args.max_processes,
        "process_ceiling": args.max_processes / 0.05,
        "busy_c": busy_c,
    }
    sections = []
    for name in scenarios:
        if name == "saturated":
            rows = [
                Series("fast route p99 ms", ",.1f", {k: [r.p99_ms for r in rs] for k, rs in fast.runs.items()}),
                Series("fast route p50 ms", ",.2f", {k: [r.p50_ms for r in rs] for k, rs in fast.runs.items()}),
                Series("fast route req/s", ",.0f", {k: [r.rps for r in rs] for k, rs in fast.runs.items()}),
                Series(f"blocking req/s (c={busy_c})", ",.0f", {k: [r.rps for r in rs] for k, rs in busy.runs.items()}),
            ]
            raw = {"fast": fast.to_dict("framex", "fastapi"), "busy": busy.to_dict("framex", "fastapi")}
        else:
            rows = load_series(points[name], [a.key for a in apps])
            raw = {"points": [p.to_dict("framex", "fastapi") for p in points[name]]}
        table = render_peer_table(rows, [(k, lbl) for k, lbl in labels if any(k in r.values for r in rows)])
        sections.append(Section(name, TITLES[name], WHAT[name].format(**facts), table, raw=raw))
    return sections
