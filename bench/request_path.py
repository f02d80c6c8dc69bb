"""FrameX's request path against plain FastAPI, plain Starlette and a bare ASGI callable.

Measures the targets of the compiled request path (``server.compiled_routes``), each app
in its own uvicorn process with the same flags (``bench.common.uvicorn_command``):

- ``query``: ``GET /api/v1/q?x=5``, one validated ``int`` query parameter. FrameX
  (its defaults, no YAML), FrameX with ``server.compiled_routes: false`` (FastAPI's path,
  for reference), plain FastAPI, plain Starlette (a ``Route`` checking the int itself)
  and a bare ASGI callable (parse, check, JSON-encode, send). Targets: FrameX >= 2.0x
  FastAPI's req/s and >= 0.5x the bare callable's, at 16 and 64 connections.
- ``order``: ``POST /api/v1/order`` with a JSON body validated into a 5-field model
  (``bench/apps/order.py``). Target: FrameX >= 1.8x FastAPI's req/s. Needs wrk.
- ``blocking``: ``GET /api/v1/blocking?ms=50``, a sync job sleeping 50 ms on a pool of 32
  threads (FrameX: ``@remote()``; FastAPI: ``run_in_threadpool``). Target: FrameX's server
  CPU per request <= 1.0x FastAPI's at 64 connections.
- ``call``: FrameX only, ``/api/v1/call`` (``call_plugin_api("/api/v1/q", x=5)``) against
  ``/api/v1/direct`` (``await q(5)``). Target: call >= 0.95x direct's req/s at 1 connection.

Every server runs on one CPU (the last one), each in a session of its own; the driver
and the load generator run on the others. Per point the apps take turns (the order
rotates every run) and the medians of ``--runs`` measurements are reported; a
measurement that other processes disturbed is taken again (``bench.common.measure_point``).

Run from the repository root::

    python -m bench.request_path            # full run, about 6 minutes
    python -m bench.request_path --quick    # smoke run, under a minute

The tables go to stdout, progress to stderr, everything to ``bench/results/request_path.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.apps.order import SAMPLE, Order, summary
from bench.common import (
    HOST,
    OTHER_LOAD_LIMIT,
    RESULTS,
    ROOT,
    WRK_SCRIPT,
    Measure,
    Point,
    Target,
    add_load_options,
    add_server_options,
    apply_profile,
    check_load_options,
    command_line,
    free_port,
    load_series,
    machine,
    measure_point,
    measurement_notes,
    pick_loadgen,
    print_results,
    render_peer_table,
    run_cli,
    run_wrk,
    serving,
    source_state,
    timestamp,
    uvicorn_command,
    versions,
    write_report,
)
from bench.http_local import resolved_server_stack, server_env
from bench.loadgen import LoadResult
from bench.production import cpu_layout
from bench.request_path_verdicts import features_note, goals, judge, load_average, render_conditions, render_goals

DEFAULT_OUTPUT = RESULTS / "request_path.json"
READY = "/api/v1/q?x=1"
PLUGINS = "bench.apps.path_plugin,bench.apps.path_caller"

FULL: dict[str, Any] = {"duration": 4.0, "warmup": 1.0, "runs": 3, "retries": 2}
FULL |= {"concurrency": [16, 64], "blocking_concurrency": [64], "call_concurrency": [1, 16]}
QUICK: dict[str, Any] = {
    "duration": 1.0,
    "warmup": 0.3,
    "runs": 1,
    "retries": 0,
}  # a smoke run: no retrying on a busy machine
QUICK |= {"concurrency": [16], "blocking_concurrency": [64], "call_concurrency": [1]}


@dataclass(frozen=True)
class ServerSpec:
    """One uvicorn process: its app and what its environment adds."""

    key: str
    label: str
    target: str
    env: dict[str, str] = field(default_factory=dict)
    envelope: bool = False
    """It answers in FrameX's envelope: the handler's result is under ``data``."""


SERVERS = {
    spec.key: spec
    for spec in (
        ServerSpec("framex", "FrameX", "bench.apps.framex_app:app", {"BENCH_PLUGINS": PLUGINS}, envelope=True),
        ServerSpec(
            "framex_fastapi",
            "FrameX on FastAPI's path",
            "bench.apps.framex_app:app",
            {"BENCH_PLUGINS": PLUGINS, "BENCH_COMPILED": "off"},
            envelope=True,
        ),
        ServerSpec("fastapi", "FastAPI", "bench.apps.path_fastapi:app"),
        ServerSpec("starlette", "Starlette", "bench.apps.path_starlette:app"),
        ServerSpec("asgi", "bare ASGI", "bench.apps.path_asgi:app"),
    )
}


@dataclass(frozen=True)
class Contender:
    """What one column of a scenario measures: a path on one of the servers."""

    key: str
    label: str
    server: str
    path: str


@dataclass(frozen=True)
class Scenario:
    """One table: the contenders (the first is the one the ratios are about) and where it is loaded."""

    name: str
    request: str
    contenders: tuple[Contender, ...]
    levels: str
    """The option holding its concurrency levels."""
    base: str = "fastapi"
    """The contender the JSON report's ratio of each point is against."""
    post: bool = False


def scenarios(blocking_ms: int) -> list[Scenario]:
    """Every scenario, the apps of each in the order of their columns."""
    query = "/api/v1/q?x=5"
    same = ("framex", "framex_fastapi", "fastapi")
    blocking = f"/api/v1/blocking?ms={blocking_ms}"
    return [
        Scenario(
            "query",
            f"GET {query}",
            tuple(Contender(k, SERVERS[k].label, k, query) for k in (*same, "starlette", "asgi")),
            "concurrency",
        ),
        Scenario(
            "order",
            "POST /api/v1/order (JSON body, 5-field model)",
            tuple(Contender(k, SERVERS[k].label, k, "/api/v1/order") for k in same),
            "concurrency",
            post=True,
        ),
        Scenario(
            "blocking",
            f"GET {blocking}",
            tuple(Contender(k, SERVERS[k].label, k, blocking) for k in ("framex", "fastapi")),
            "blocking_concurrency",
        ),
        Scenario(
            "call",
            "GET /api/v1/call against GET /api/v1/direct (FrameX)",
            (
                Contender("call", "call_plugin_api", "framex", "/api/v1/call"),
                Contender("direct", "direct await", "framex", "/api/v1/direct"),
            ),
            "call_concurrency",
            base="direct",
        ),
    ]


# -- servers ------------------------------------------------------------------------


@dataclass
class Server:
    """A running uvicorn process."""

    spec: ServerSpec
    port: int
    pid: int

    @property
    def target(self) -> Target:
        return Target(self.port, self.pid)


@contextlib.contextmanager
def running(spec: ServerSpec, args: argparse.Namespace, workdir: Path, cpus: set[int] | None) -> Iterator[Server]:
    """Start ``spec`` under uvicorn in ``workdir`` (no ``config/local.yaml`` there, no FrameX
    variables in its environment); stop it on exit."""
    port = free_port()
    command = uvicorn_command(sys.executable, spec.target, ROOT, port, args.loop, args.http)
    env = {**server_env(args.max_workers), **spec.env}
    log_path = workdir / f"{spec.key}.log"
    with serving(
        command, label=spec.label, port=port, ready_path=READY, cwd=workdir, env=env, log_path=log_path, cpus=cpus
    ) as (process, _):
        yield Server(spec, port, process.pid)


def request(port: int, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
    """One request on a fresh connection: status, headers (lower-case names), decoded JSON body."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        payload = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json"} if payload else {})
        response = conn.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, json.loads(response.read() or b"null")
    finally:
        conn.close()


CHECKS: dict[str, list[tuple[str, str, Any, int, Any]]] = {
    # method, path, body, status, the handler's result (None: not compared)
    "query": [("GET", "/api/v1/q?x=5", None, 200, {"x": 5}), ("GET", "/api/v1/q?x=five", None, 422, None)],
    "order": [
        ("POST", "/api/v1/order", SAMPLE, 200, summary(Order.model_validate(SAMPLE))),
        ("POST", "/api/v1/order", {**SAMPLE, "quantity": "many"}, 422, None),
    ],
    "blocking": [("GET", "/api/v1/blocking?ms=1", None, 200, 1)],
    "call": [("GET", "/api/v1/call", None, 200, {"x": 5}), ("GET", "/api/v1/direct", None, 200, {"x": 5})],
}


def check_answers(chosen: Sequence[Scenario], servers: dict[str, Server]) -> None:
    """Every route answers as its handler would (and rejects a bad value) before anything is measured."""
    for scenario in chosen:
        for key in dict.fromkeys(c.server for c in scenario.contenders):
            server = servers[key]
            for method, path, body, status, expected in CHECKS[scenario.name]:
                got_status, _, got = request(server.port, method, path, body)
                result = got.get("data") if server.spec.envelope and isinstance(got, dict) else got
                if got_status != status or (expected is not None and result != expected):
                    raise RuntimeError(f"{server.spec.label} {method} {path}: status {got_status}, body {got!r:.300}")


def framex_features(server: Server) -> dict[str, Any]:
    """What the FrameX server has on per request (its ``/api/v1/features``, and the request id header)."""
    _, headers, _ = request(server.port, "GET", READY)
    _, _, body = request(server.port, "GET", "/api/v1/features")
    return {"request_ids": "x-request-id" in headers, **body["data"]}


# -- load -----------------------------------------------------------------------------


def post_script(folder: Path) -> Path:
    """A wrk script posting ``SAMPLE`` as JSON, with ``wrk_report.lua``'s reporter (wrk takes one script)."""
    path = folder / "post_order.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [==[{json.dumps(SAMPLE)}]==]\n"
        'wrk.headers["Content-Type"] = "application/json"\n' + WRK_SCRIPT.read_text()
    )
    return path


def at_path(measure: Measure, path: str) -> Measure:
    """``measure`` sending ``path`` whatever the point's path (two routes of one server in one point)."""

    def run(target: Target, _: str, concurrency: int, duration: float, warmup: float) -> LoadResult:
        return measure(target, path, concurrency, duration, warmup)

    return run


def measure_all(
    chosen: Sequence[Scenario],
    points: dict[str, list[Point]],
    servers: dict[str, Server],
    measures: dict[bool, Measure],
    args: argparse.Namespace,
) -> None:
    """``--runs`` rounds per point; within a round every contender once, the order rotating every round."""
    for scenario in chosen:
        for point in points[scenario.name]:
            for run in range(args.runs):
                shift = run % len(scenario.contenders)
                for c in scenario.contenders[shift:] + scenario.contenders[:shift]:
                    measure = at_path(measures[scenario.post], c.path)
                    target = servers[c.server].target
                    measure_point(measure, target, point, c.key, c.label, f"run {run + 1}/{args.runs}", args)


# -- main -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.request_path",
        description="FrameX's request path against plain FastAPI, Starlette and a bare ASGI callable.",
    )
    add_load_options(parser, FULL, DEFAULT_OUTPUT)
    parser.set_defaults(retries=None)  # from the profile: a quick run does not retry
    parser.add_argument("--concurrency", type=int, nargs="+", help=f"query and order levels {FULL['concurrency']}")
    parser.add_argument(
        "--blocking-concurrency", type=int, nargs="+", help=f"blocking levels {FULL['blocking_concurrency']}"
    )
    parser.add_argument("--call-concurrency", type=int, nargs="+", help=f"call levels {FULL['call_concurrency']}")
    parser.add_argument("--blocking-ms", type=int, default=50, help="how long each blocking job sleeps (50)")
    parser.add_argument("--max-workers", type=int, default=32, help="thread pool size of FrameX and FastAPI (32)")
    names = [s.name for s in scenarios(0)]
    parser.add_argument("--scenarios", nargs="+", choices=names, default=names)
    add_server_options(parser, pool=False)
    args = parser.parse_args(argv)
    apply_profile(args, QUICK if args.quick else FULL)
    check_load_options(parser, args, [*args.concurrency, *args.blocking_concurrency, *args.call_concurrency])
    if args.max_workers < 1 or args.blocking_ms < 0:
        parser.error("need --max-workers >= 1 and --blocking-ms >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every measurement, print the tables, write the JSON file."""
    args = parse_args(argv)
    loadgen, measure = pick_loadgen(args.loadgen)
    notes: list[str] = []
    chosen = [s for s in scenarios(args.blocking_ms) if s.name in args.scenarios]
    if loadgen != "wrk" and any(s.post for s in chosen):
        chosen = [s for s in chosen if not s.post]
        notes.append("order: not measured (posting a body needs wrk; bench/loadgen.py sends GETs only)")
    server_cpus, driver_cpus = cpu_layout()
    if driver_cpus is not None:
        os.sched_setaffinity(0, driver_cpus)  # wrk inherits it
    points = {s.name: [Point(s.name, s.contenders[0].path, c) for c in getattr(args, s.levels)] for s in chosen}
    needed = {c.server for s in chosen for c in s.contenders}
    resolved = resolved_server_stack(args.loop, args.http)
    count = sum(len(s.contenders) * len(points[s.name]) for s in chosen) * args.runs
    load_before = load_average()
    print(
        f"load generator: {loadgen}; uvicorn loop={resolved['loop']} http={resolved['http']}; servers on CPU "
        f"{sorted(server_cpus) if server_cpus else 'any'}; {count} measurements of {args.duration:g} s "
        f"(+{args.warmup:g} s warm-up); load average {load_before}; framex from {ROOT}",
        file=sys.stderr,
    )

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="framex-bench-") as tmp, contextlib.ExitStack() as exits:
        folder = Path(tmp)
        measures: dict[bool, Measure] = {False: measure, True: functools.partial(run_wrk, script=post_script(folder))}
        servers = {
            key: exits.enter_context(running(SERVERS[key], args, folder, server_cpus))
            for key in SERVERS
            if key in needed
        }
        check_answers(chosen, servers)
        features = {k: framex_features(servers[k]) for k in ("framex", "framex_fastapi") if k in servers}
        measure_all(chosen, points, servers, measures, args)

    every = [p for s in chosen for p in points[s.name]]
    judged = [judge(g, p) for g in goals(args) for p in points.get(g.scenario, []) if p.concurrency == g.concurrency]
    blocks = [
        f"### {s.name}: {s.request}\n\n"
        + render_peer_table(
            load_series(points[s.name], [c.key for c in s.contenders]), [(c.key, c.label) for c in s.contenders]
        )
        for s in chosen
    ]
    blocks += [f"### targets\n\n{render_goals(judged)}", f"### conditions\n\n{render_conditions(every)}"]
    notes += [features_note(SERVERS[k].label, found) for k, found in features.items()]
    notes.append(
        f"load average (1, 5, 15 min) {load_before} at the start, {load_average()} at the end; "
        f"servers on CPU {sorted(server_cpus) if server_cpus else 'any'}, wrk and the driver on the others"
    )
    notes += measurement_notes(every, args.retries)
    print_results(*blocks, notes=notes)

    report = {
        "command": command_line("bench.request_path", argv),
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
            "server_cpus": sorted(server_cpus) if server_cpus else None,
            "uvicorn": {"loop": args.loop, "http": args.http, "resolved": resolved, "workers": 1},
        },
        "machine": machine(),
        "load_average": {"start": load_before, "end": load_average()},
        "source": source_state(),
        "versions": versions("framex", "fastapi", "starlette", "uvicorn", "pydantic", "anyio", "uvloop", "httptools"),
        "features": features,
        "targets": judged,
        "notes": notes,
        "points": [p.to_dict(s.contenders[0].key, s.base) for s in chosen for p in points[s.name]],
        "tables": blocks,
    }
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    run_cli(main, "interrupted; the servers were stopped")
