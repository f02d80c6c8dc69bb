"""``@remote`` batching: a vectorized job batched against the same job called once per item.

The job (``bench/apps/batch_plugin.py``) costs 5 ms per execution plus 20 µs per item. Three
comparisons, one after the other (never two servers or two Ray instances at once):

- ``local``: one FrameX app (uvicorn, local threads) serving the batched route and the
  unbatched one; req/s at 64 connections, and p50 latency at 1 connection.
- ``ray``: one process starts a private Ray instance and awaits 2,000 concurrent calls,
  batched and not; wall time.
- ``serve``: ``framex run --adapter ray`` serving the batched route against a hand-written
  Ray Serve app batching the same job with ``@serve.batch`` (``bench/apps/serve_batch_app.py``);
  req/s at 64 connections.

Run from the repository root::

    python -m bench.batching            # full run, about 8 minutes
    python -m bench.batching --quick    # smoke run, about 3 minutes

The tables go to stdout, progress to stderr, everything to ``bench/results/batching.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.apps.batch_plugin import BATCH_SIZE, BATCH_WAIT_MS, FIXED_S, PER_ITEM_S
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
    base_env,
    check_load_options,
    command_line,
    disturbed,
    free_port,
    http_get,
    least_disturbed,
    machine,
    measure_point,
    measurement_notes,
    num,
    pick_loadgen,
    print_results,
    ray_processes,
    render_diagnostics,
    render_table,
    run_cli,
    serving,
    source_state,
    timestamp,
    uvicorn_command,
    versions,
    worst,
    write_report,
)
from bench.http_ray import (
    AppSpec,
    Rounds,
    ServerOptions,
    framex_command,
    render_roles,
    running,
    serve_command,
    with_breakdown,
)
from bench.loadgen import cpu_shares, usage
from bench.ray_remote import start_private_ray, stop_private_ray

DEFAULT_OUTPUT = RESULTS / "batching.json"
PLUGIN = "bench.apps.batch_plugin"
LOCAL_TARGET = 8.0
"""Batched req/s over unbatched req/s at 64 connections on local threads, at least."""
LATENCY_SLACK_MS = 1.0
"""At one connection the batched p50 may exceed the unbatched one by the batch wait plus this."""
RAY_TARGET = 10.0
"""Unbatched wall time over batched wall time for the concurrent calls on Ray, at least."""
SERVE_TARGET = 1.0
"""FrameX's batched req/s over the hand-written Ray Serve app's, at least."""
SECTIONS = ("local", "ray", "serve")

FULL = {"duration": 3.0, "warmup": 1.0, "runs": 3, "ray_runs": 3, "serve_runs": 2}
QUICK = {"duration": 2.0, "warmup": 1.0, "runs": 1, "ray_runs": 1, "serve_runs": 1}
"""Windows of 2 s: through Ray Serve at 64 connections a request can take a second on a busy machine."""

LOCAL_VARIANTS = (("batched", "batched"), ("single", "unbatched"))
"""Route (``/api/v1/<key>?x=1``) and label of each local variant; batched first, as the ratio's numerator."""
SERVE_APPS = (
    AppSpec("framex", "FrameX", functools.partial(framex_command, plugins=[PLUGIN])),
    AppSpec("serve", "Ray Serve", functools.partial(serve_command, module="bench.apps.serve_batch_app")),
)
SERVE_LABELS = [(spec.key, spec.label) for spec in SERVE_APPS]


def job_summary() -> str:
    return (
        f"{FIXED_S * 1000:g} ms per execution + {PER_ITEM_S * 1e6:g} µs per item; batch_size={BATCH_SIZE}, "
        f"batch_wait_ms={BATCH_WAIT_MS:g}"
    )


def check_answer(port: int, path: str, label: str) -> None:
    """``GET path?x=41`` answers 42 in FrameX's envelope."""
    status, body = http_get(port, f"{path}?x=41", timeout=60.0)
    if status != 200 or json.loads(body).get("data") != 42:
        raise RuntimeError(f"{label} GET {path}?x=41: status {status}, body {body[:200]!r}")


# -- local threads over HTTP ----------------------------------------------------------


def run_local(measure: Measure, args: argparse.Namespace, workdir: Path) -> list[Point]:
    """One FrameX app, both routes measured in turns at every concurrency (the order alternating)."""
    points = [Point("local threads", "/api/v1/{batched,single}", c) for c in (args.concurrency, 1)]
    port = free_port()
    command = uvicorn_command(sys.executable, "bench.apps.framex_app:app", ROOT, port, args.loop, args.http)
    env = base_env(BENCH_PLUGINS=PLUGIN, BENCH_MAX_WORKERS=str(args.max_workers))
    log_path = workdir / "framex-local.log"
    with serving(
        command, label="FrameX", port=port, ready_path="/api/v1/trivial", cwd=workdir, env=env, log_path=log_path
    ) as (process, _):
        for key, label in LOCAL_VARIANTS:
            check_answer(port, f"/api/v1/{key}", label)
        target = Target(port, process.pid)
        for point in points:
            for run in range(args.runs):
                order = LOCAL_VARIANTS if run % 2 == 0 else LOCAL_VARIANTS[::-1]
                for key, label in order:
                    # A copy with this route's path; it shares `runs` with `point`.
                    route = dataclasses.replace(point, path=f"/api/v1/{key}?x=1")
                    measure_point(measure, target, route, key, label, f"run {run + 1}/{args.runs}", args)
    return points


# -- Ray: concurrent calls in one process ------------------------------------------------


@dataclasses.dataclass
class RaySample:
    """``calls`` concurrent calls of one variant, awaited together in ``seconds``."""

    variant: str
    calls: int
    seconds: float
    ray_cpu: float | None
    """Cores used by this process and every Ray process it started."""
    other_cpu: float | None
    steal: float | None


def ray_labels(num_cpus: int) -> dict[str, str]:
    """The Ray variants, by key."""
    return {
        "single": "unbatched: one task per call",
        "batched": "batched: one task per batch, 1 batch in flight (the default)",
        "batched_parallel": f"batched, `max_concurrency={num_cpus}`: {num_cpus} batches in flight",
    }


def ray_calls(num_cpus: int) -> dict[str, Callable[[int], Awaitable[Any]]]:
    """The call of each Ray variant; import after Ray has started."""
    from bench.apps.batch_plugin import batched, single

    return {
        "single": single.remote,
        "batched": batched.remote,
        "batched_parallel": batched.options(max_concurrency=num_cpus).remote,
    }


def run_ray(args: argparse.Namespace) -> list[RaySample]:
    """Start Ray, check and warm every variant, measure ``--ray-runs`` rounds (order rotating), stop Ray."""
    print(f"starting a private Ray instance ({args.num_cpus} CPUs, 127.0.0.1) ...", file=sys.stderr, flush=True)
    loop = asyncio.new_event_loop()
    samples: list[RaySample] = []
    try:
        start_private_ray(args.num_cpus)
        variants = ray_calls(args.num_cpus)

        async def gather(call: Callable[[int], Awaitable[Any]], n: int) -> list[Any]:
            return list(await asyncio.gather(*(call(i) for i in range(n))))

        for key, call in variants.items():
            if loop.run_until_complete(gather(call, 4 * BATCH_SIZE)) != [i + 1 for i in range(4 * BATCH_SIZE)]:
                raise RuntimeError(f"Ray {key}: wrong answers")

        def attempt(key: str, call: Callable[[int], Awaitable[Any]], note: str) -> RaySample:
            before, started = usage(os.getpid(), lambda: 0.0, tree=True), time.perf_counter()
            loop.run_until_complete(gather(call, args.calls))
            seconds = time.perf_counter() - started
            shares = cpu_shares(before, usage(os.getpid(), lambda: 0.0, tree=True))
            sample = RaySample(key, args.calls, seconds, shares["server_cpu"], shares["other_cpu"], shares["steal"])
            print(
                f"  ray {note} {key:17} {args.calls} calls in {seconds:6.2f} s  ray {num(sample.ray_cpu, '.2f')} "
                f"other {num(sample.other_cpu, '.2f')}{'  (disturbed)' if disturbed(sample.other_cpu) else ''}",
                file=sys.stderr,
                flush=True,
            )
            return sample

        keys = list(variants)
        for run in range(args.ray_runs):
            shift = run % len(keys)
            for key in keys[shift:] + keys[:shift]:
                call, note = variants[key], f"run {run + 1}/{args.ray_runs}"
                samples.append(
                    least_disturbed(functools.partial(attempt, key, call, note), lambda s: s.other_cpu, args.retries)
                )
    finally:
        loop.close()
        leftovers = stop_private_ray()
        if leftovers:
            print(f"warning: killed Ray processes left after shutdown: {', '.join(leftovers)}", file=sys.stderr)
    return samples


def ray_median(samples: list[RaySample], key: str) -> float | None:
    values = [s.seconds for s in samples if s.variant == key]
    return statistics.median(values) if values else None


def render_ray(samples: list[RaySample], labels: dict[str, str]) -> str:
    """Median wall time per variant, the speed-up over the unbatched calls, and the spread."""
    base = ray_median(samples, "single")
    lines = [
        "| calls on Ray | runs | wall s (median) | min | max | calls/s | unbatched ÷ this "
        "| Ray+driver CPU | max other load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, label in labels.items():
        mine = [s for s in samples if s.variant == key]
        if not mine:
            continue
        walls = sorted(s.seconds for s in mine)
        median = statistics.median(walls)
        cores = [s.ray_cpu for s in mine if s.ray_cpu is not None]
        speedup = num(base / median if base else None, ".1f")
        ray_cpu = num(statistics.median(cores) if cores else None, ".2f")
        lines.append(
            f"| {label} | {len(mine)} | {median:.3f} | {walls[0]:.3f} | {walls[-1]:.3f} "
            f"| {mine[0].calls / median:,.0f} | {speedup}x | {ray_cpu} | {num(worst(mine, 'other_cpu'), '.2f')} |"
        )
    return "\n".join(lines)


# -- Ray Serve: FrameX against @serve.batch -----------------------------------------------


def run_serve(measure: Measure, args: argparse.Namespace, logs: Path) -> Rounds:
    """``--serve-runs`` rounds; in each, both servers in turn (order alternating): start, check, measure, stop.

    The CPU of each process role (proxy, ingress, plugin replica, tasks, ...) is recorded too."""
    point = Point("Ray Serve", "/api/v1/batched?x=1", args.concurrency)
    rounds = Rounds([point])
    measure = with_breakdown(measure, rounds.breakdowns)
    options = ServerOptions(args.num_cpus, args.max_ongoing_requests)
    for run in range(args.serve_runs):
        for spec in SERVE_APPS if run % 2 == 0 else SERVE_APPS[::-1]:
            note = f"run {run + 1}/{args.serve_runs}"
            print(f"  starting {spec.label} ({note}) ...", file=sys.stderr, flush=True)
            with running(spec, options, logs, logs / f"{spec.key}-{run + 1}.log") as server:
                print(f"  {spec.label}: first 200 after {server.startup_s:.1f} s", file=sys.stderr, flush=True)
                rounds.sessions.append(server.process.pid)
                rounds.startup_s.setdefault(spec.key, []).append(server.startup_s)
                check_answer(server.port, "/api/v1/batched", spec.label)
                measure_point(measure, server.target, point, spec.key, spec.label, note, args)
            rounds.killed.setdefault(spec.key, []).extend(server.killed)
    return rounds


# -- report -----------------------------------------------------------------------------


def verdict(value: float, target: float, unit: str = "x", at_most: bool = False) -> str:
    """Whether ``value`` meets ``target``, said as ``meets the >= 8x target`` (or ``MISSES``)."""
    met = value <= target if at_most else value >= target
    return f"{'meets' if met else 'MISSES'} the {'<=' if at_most else '>='} {target:.4g}{unit} target"


def verdicts(
    local: list[Point], ray: list[RaySample], serve: Point | None, args: argparse.Namespace
) -> tuple[list[str], dict[str, Any]]:
    """One note per target (met or not, with the number), and the numbers themselves."""
    notes: list[str] = []
    found: dict[str, Any] = {}
    high = next((p for p in local if p.concurrency == args.concurrency), None)
    if high is not None and (ratio := high.ratio("batched", "single")) is not None:
        found["local_ratio"] = ratio
        notes.append(
            f"local threads, c={args.concurrency}: batched / unbatched req/s {ratio:.1f}x "
            f"{verdict(ratio, LOCAL_TARGET)}"
        )
    low = next((p for p in local if p.concurrency == 1), None)
    batched, single = (low.median("batched", "p50_ms"), low.median("single", "p50_ms")) if low else (None, None)
    if batched is not None and single is not None:
        bound = single + BATCH_WAIT_MS + LATENCY_SLACK_MS
        found["latency_p50_ms"] = {"batched": batched, "unbatched": single, "bound": bound}
        notes.append(
            f"local threads, c=1: batched p50 {batched:.2f} ms {verdict(batched, bound, ' ms', True)} "
            f"(unbatched p50 {single:.2f} + batch_wait_ms {BATCH_WAIT_MS:g} + {LATENCY_SLACK_MS:g})"
        )
    single_s, batched_s, parallel_s = (ray_median(ray, key) for key in ("single", "batched", "batched_parallel"))
    if single_s and batched_s and parallel_s:
        found["ray_ratio"], found["ray_ratio_parallel"] = single_s / batched_s, single_s / parallel_s
        notes.append(
            f"Ray, {args.calls} concurrent calls: unbatched {single_s:.2f} s / batched {batched_s:.3f} s = "
            f"{found['ray_ratio']:.1f}x {verdict(found['ray_ratio'], RAY_TARGET)} (with "
            f"max_concurrency={args.num_cpus}: {parallel_s:.3f} s, {found['ray_ratio_parallel']:.1f}x)"
        )
    if serve is not None and (ratio := serve.ratio("framex", "serve")) is not None:
        found["serve_ratio"] = ratio
        notes.append(
            f"Ray Serve, c={args.concurrency}: FrameX / hand-written @serve.batch req/s {ratio:.2f}x "
            f"{verdict(ratio, SERVE_TARGET)}"
        )
    return notes, found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.batching",
        description="@remote batching: a vectorized job batched against one call per item (threads, Ray, Ray Serve).",
    )
    add_load_options(parser, FULL, DEFAULT_OUTPUT)
    add_server_options(parser)
    parser.add_argument("--concurrency", type=int, default=64, help="connections of the throughput points (64)")
    parser.add_argument("--calls", type=int, default=2000, help="concurrent calls per Ray measurement (2000)")
    parser.add_argument("--ray-runs", type=int, help=f"Ray measurements per variant ({FULL['ray_runs']})")
    parser.add_argument("--serve-runs", type=int, help=f"rounds of the Ray Serve servers ({FULL['serve_runs']})")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of every private Ray instance (2)")
    parser.add_argument(
        "--max-ongoing-requests", type=int, default=100, help="per replica, every Serve deployment (100)"
    )
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    args = parser.parse_args(argv)
    apply_profile(args, QUICK if args.quick else FULL)
    check_load_options(parser, args, [args.concurrency])
    if min(args.calls, args.ray_runs, args.serve_runs, args.num_cpus, args.max_workers) < 1:
        parser.error("need --calls, --ray-runs, --serve-runs, --num-cpus and --max-workers >= 1")
    if args.max_ongoing_requests < max(args.concurrency, BATCH_SIZE):
        parser.error("--max-ongoing-requests must cover --concurrency and the batch size")
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure the chosen sections, print the tables, write the JSON file."""
    args = parse_args(argv)
    loadgen, measure = pick_loadgen(args.loadgen)
    foreign = ray_processes()
    print(
        f"job: {job_summary()}; load generator: {loadgen}; {len(foreign)} Ray process(es) of someone else running",
        file=sys.stderr,
        flush=True,
    )
    started = time.time()
    local: list[Point] = []
    ray: list[RaySample] = []
    serve: Rounds | None = None
    with tempfile.TemporaryDirectory(prefix="framex-bench-batching-") as tmp:
        if "local" in args.sections:
            local = run_local(measure, args, Path(tmp))
        if "ray" in args.sections:
            ray = run_ray(args)
        if "serve" in args.sections:
            serve = run_serve(measure, args, Path(tmp))
    foreign += [p for p in ray_processes() if p not in foreign]

    tables: dict[str, str] = {}
    if local:
        tables["local"] = render_table(local, LOCAL_VARIANTS) + "\n\n" + render_diagnostics(local, LOCAL_VARIANTS)
    if ray:
        tables["ray"] = render_ray(ray, ray_labels(args.num_cpus))
    serve_points = serve.points if serve else []
    if serve is not None:
        tables["serve"] = "\n\n".join(
            [
                render_table(serve_points, SERVE_LABELS),
                render_diagnostics(serve_points, SERVE_LABELS),
                render_roles(serve),
            ]
        )
    notes, found = verdicts(local, ray, serve_points[0] if serve_points else None, args)
    notes += measurement_notes([*local, *serve_points], args.retries)
    killed = {key: pids for key, pids in (serve.killed if serve else {}).items() if pids}
    if killed:
        notes.append(f"processes that outlived their server and were killed: {killed}")
    kept = sum(1 for s in ray if disturbed(s.other_cpu))
    if kept:
        notes.append(
            f"{kept} of {len(ray)} Ray measurement(s) kept ran while other processes used > {OTHER_LOAD_LIMIT} core"
        )
    if foreign:
        notes.append(f"{len(foreign)} Ray process(es) of someone else ran on the machine (their CPU is other load)")
    print_results(*tables.values(), notes=notes)

    report = {
        "command": command_line("bench.batching", argv),
        "started": timestamp(started),
        "seconds": round(time.time() - started, 1),
        "settings": {
            "job": job_summary(),
            "duration": args.duration,
            "warmup": args.warmup,
            "runs": args.runs,
            "ray_runs": args.ray_runs,
            "serve_runs": args.serve_runs,
            "concurrency": args.concurrency,
            "calls": args.calls,
            "max_workers": args.max_workers,
            "retries": args.retries,
            "other_load_limit": OTHER_LOAD_LIMIT,
            "load_generator": loadgen,
            "ray": {"num_cpus": args.num_cpus, "address": "local (private)", "node_ip": "127.0.0.1"},
        },
        "machine": machine(),
        "versions": versions("framex", "ray", "fastapi", "starlette", "uvicorn", "pydantic"),
        "source": source_state(),
        "results": found,
        "notes": notes,
        "local_points": [p.to_dict("batched", "single") for p in local],
        "ray_samples": [dataclasses.asdict(s) for s in ray],
        "serve_points": [
            {
                **p.to_dict("framex", "serve"),
                "server_us_per_request_by_role": {k: serve.roles(p, k) for k, _ in SERVE_LABELS},
            }
            for p in serve_points
            if serve is not None
        ],
        "serve_startup_seconds": serve.startup_s if serve else {},
        "tables": tables,
    }
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    run_cli(main, "interrupted; the servers and Ray were stopped")
