"""What tracing costs: req/s of the trivial route and of an ``@remote`` route with tracing
off, at ``sample_ratio`` 0, 0.01 and 1.0 (OTLP/HTTP batching exporter), and of a build
without the tracing code path at all (``--baseline``, a git revision).

Five servers of the same app (``bench/apps/framex_app.py``) run side by side; the load
generator drives one at a time, alternating within each round, and the median of
``--runs`` rounds is reported. The traced servers export to an OTLP sink in this process
that answers every export with 200 and keeps nothing (a collector on another machine,
in production). A second table gives each app's CPU time per request driven in-process
through ASGI (``bench/apps/asgi_cpu.py``): on a busy machine it moves less than req/s.
The baseline's ``framex`` package is exported from git into a scratch folder that holds
the benchmark apps too. A third table measures the OpenTelemetry SDK on its own (making a
server span, and the OTLP exporter encoding it) and what capacity those µs alone would leave
each route: the floor under any tracer built on the SDK.

Run from the repository root::

    python -m bench.tracing                # full run, a few minutes
    python -m bench.tracing --quick        # smoke run
    python -m bench.tracing --baseline <commit>    # another build to compare with
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.common import (
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
    machine,
    measure_point,
    measurement_notes,
    num,
    pick_loadgen,
    print_results,
    run_cli,
    serving,
    source_state,
    timestamp,
    uvicorn_command,
    versions,
    write_report,
)

DEFAULT_OUTPUT = RESULTS / "tracing.json"
FULL = {"duration": 5.0, "warmup": 1.0, "runs": 3, "concurrency": [16], "requests": 5000}
QUICK = {"duration": 1.0, "warmup": 0.3, "runs": 1, "concurrency": [8], "requests": 1000}
PATHS = {"trivial": "/api/v1/trivial", "remote": "/api/v1/blocking?ms=0"}

APPS = (
    ("baseline", "no tracing code"),
    ("off", "tracing off"),
    ("ratio_0", "sample_ratio 0"),
    ("ratio_001", "sample_ratio 0.01"),
    ("ratio_1", "sample_ratio 1.0"),
)
RATIOS = {
    ("off", "baseline"): "off / baseline",
    ("ratio_0", "off"): "0 / off",
    ("ratio_001", "off"): "0.01 / off",
    ("ratio_1", "off"): "1.0 / off",
}
"""The ratios reported: req/s (or capacity) of the first app over the second's. At
``sample_ratio: 0`` no request is recorded: what the unsampled requests of any ratio cost."""
TARGETS = {("off", "baseline"): 0.99, ("ratio_001", "off"): 0.97, ("ratio_1", "off"): 0.85}
"""The bars: req/s of the first over the second."""
SDK_SPANS = 20_000
"""Spans made (and encoded) to measure the OpenTelemetry SDK's own cost per span."""
SPANS_PER_REQUEST = {"trivial": 1, "remote": 3}
"""Spans a recorded request of each route makes: the request's; the ``@remote`` route adds its call's and its work's."""


@contextlib.contextmanager
def otlp_sink() -> Iterator[str]:
    """An OTLP/HTTP endpoint on 127.0.0.1 that accepts every export and keeps nothing."""

    class Sink(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="otlp-sink")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    finally:
        server.shutdown()
        server.server_close()


def export_baseline(revision: str, into: Path) -> None:
    """``framex/`` as of ``revision``, and a link to this tree's ``bench/``, in ``into``."""
    archive = subprocess.run(["git", "archive", revision, "framex"], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    (into / "bench").symlink_to(ROOT / "bench")


def tracing_env(app: str, endpoint: str) -> dict[str, str]:
    ratio = {"ratio_0": "0.0", "ratio_001": "0.01", "ratio_1": "1.0"}.get(app)
    if ratio is None:
        return {}
    return {
        "FRAMEX__TRACING__ENABLED": "true",
        "FRAMEX__TRACING__ENDPOINT": endpoint,
        "FRAMEX__TRACING__SAMPLE_RATIO": ratio,
    }


def main(argv: list[str] | None = None) -> int:
    """Run every measurement, print the table, write the JSON file."""
    args = parse_args(argv)
    loadgen, measure = pick_loadgen(args.loadgen)
    points = [Point(name, PATHS[name], c) for name in PATHS for c in args.concurrency]
    started = time.time()
    with (
        tempfile.TemporaryDirectory(prefix="framex-bench-tracing-") as tmp,
        otlp_sink() as endpoint,
        contextlib.ExitStack() as servers,
    ):
        baseline_dir = Path(tmp) / "baseline"
        baseline_dir.mkdir()
        export_baseline(args.baseline, baseline_dir)
        targets: dict[str, Target] = {}
        for key, label in APPS:
            port = free_port()
            app_dir = baseline_dir if key == "baseline" else ROOT
            process, _ = servers.enter_context(
                serving(
                    uvicorn_command(sys.executable, "bench.apps.framex_app:app", app_dir, port),
                    label=label,
                    port=port,
                    ready_path=PATHS["trivial"],
                    cwd=Path(tmp),
                    env=base_env(**tracing_env(key, endpoint)),
                    log_path=Path(tmp) / f"{key}.log",
                )
            )
            targets[key] = Target(port, process.pid)
        for point in points:
            for run in range(args.runs):
                for key, label in APPS:
                    measure_point(measure, targets[key], point, key, label, f"run {run + 1}/{args.runs}", args)

        cpu = measure_cpu(baseline_dir, Path(tmp), endpoint, args)

    sdk = sdk_cost(SDK_SPANS)
    table = render(points)
    cpu_table = render_cpu(cpu)
    sdk_table = render_sdk(sdk, cpu)
    notes = verdicts(points) + floor_notes(sdk, cpu) + measurement_notes(points, args.retries)
    print_results(table, cpu_table, sdk_table, notes=notes)
    report = {
        "command": command_line("bench.tracing", argv),
        "started": timestamp(started),
        "seconds": round(time.time() - started, 1),
        "baseline": args.baseline,
        "source": source_state(),
        "settings": {
            "duration": args.duration,
            "warmup": args.warmup,
            "runs": args.runs,
            "requests": args.requests,
            "load_generator": loadgen,
        },
        "machine": machine(),
        "versions": versions("framex", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http", "uvicorn"),
        "notes": notes,
        "points": [
            {
                "scenario": p.scenario,
                "concurrency": p.concurrency,
                "apps": {
                    key: {"median_rps": p.median(key, "rps"), "median_p99_ms": p.median(key, "p99_ms")}
                    for key, _ in APPS
                },
                "runs": {key: [r.to_dict() for r in rs] for key, rs in p.runs.items()},
            }
            for p in points
        ],
        "tables": {"http": table, "cpu": cpu_table, "sdk": sdk_table},
        "cpu_us_per_request": cpu,
        "sdk_us_per_span": sdk,
    }
    write_report(args.output, report)
    return 0


def measure_cpu(
    baseline_dir: Path, scratch: Path, endpoint: str, args: argparse.Namespace
) -> dict[str, dict[str, list[float]]]:
    """CPU µs per request of each app in-process (``bench/apps/asgi_cpu.py``), ``--runs`` rounds, alternating.

    Every app runs in ``scratch``, a folder without ``config/local.yaml``: the same built-in defaults for all.
    """
    found: dict[str, dict[str, list[float]]] = {name: {key: [] for key, _ in APPS} for name in PATHS}
    for run in range(args.runs):
        for name, path in PATHS.items():
            for key, label in APPS:
                app_dir = baseline_dir if key == "baseline" else ROOT
                env = base_env(PYTHONPATH=str(app_dir), **tracing_env(key, endpoint))
                out = subprocess.run(
                    [sys.executable, str(ROOT / "bench" / "apps" / "asgi_cpu.py"), path, str(args.requests)],
                    cwd=scratch,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                found[name][key].append(float(out.stdout.strip().splitlines()[-1]))
                print(
                    f"  cpu {name:8} run {run + 1}/{args.runs} {label:18} {found[name][key][-1]:8.1f} µs/request",
                    file=sys.stderr,
                    flush=True,
                )
    return found


def header(first: list[str], unit: str) -> list[str]:
    """A table's two header lines: the ``first`` columns, one per app in ``unit``, one per ratio."""
    columns = [*first, *(f"{label} {unit}" for _, label in APPS), *RATIOS.values()]
    return [
        "| " + " | ".join(columns) + " |",
        "| --- |" + " ---: |" * (len(columns) - 1),
    ]


def render_cpu(cpu: dict[str, dict[str, list[float]]]) -> str:
    """Median CPU µs per request in-process, and the same ratios as capacities (baseline µs / app µs)."""
    lines = header(["route"], "µs/request")
    for name, by_app in cpu.items():
        medians = {key: statistics.median(values) for key, values in by_app.items() if values}
        cells = " | ".join(num(medians.get(key), ".1f") for key, _ in APPS)
        ratios = " | ".join(f"{medians[b] / medians[a]:.3f}x" for a, b in RATIOS)
        lines.append(f"| {name} | {cells} | {ratios} |")
    return "\n".join(lines)


def render(points: list[Point]) -> str:
    """Median req/s per app, and the ratios between them."""
    lines = header(["route", "connections"], "req/s")
    for p in points:
        rates = " | ".join(num(p.median(key, "rps"), ",.0f") for key, _ in APPS)
        ratios = " | ".join(f"{num(p.ratio(a, b), '.3f')}x" for a, b in RATIOS)
        lines.append(f"| {p.scenario} | {p.concurrency} | {rates} | {ratios} |")
    return "\n".join(lines)


def sdk_cost(spans: int) -> dict[str, float]:
    """CPU µs per span that the OpenTelemetry SDK and the OTLP exporter's encoder take, without FrameX.

    ``make``: a server span as any SDK-based HTTP tracer makes it (three attributes at its
    start, made current, renamed and two attributes at its end), handed to a batching span
    processor. ``encode``: the OTLP/HTTP exporter's protobuf encoding of such spans, 512 per
    batch (its default). Sending the batches is not counted.
    """
    from opentelemetry import context, trace
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Keep(SpanExporter):
        def __init__(self) -> None:
            self.spans: list[ReadableSpan] = []

        def export(self, spans: Any) -> SpanExportResult:
            self.spans.extend(spans)
            return SpanExportResult.SUCCESS

    kept = Keep()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(BatchSpanProcessor(kept, max_queue_size=spans, schedule_delay_millis=3_600_000))
    tracer = provider.get_tracer("bench")
    server = trace.SpanKind.SERVER
    start = time.process_time()
    for _ in range(spans):
        span = tracer.start_span(
            "GET", kind=server, attributes={"http.request.method": "GET", "url.path": "/x", "framex.request_id": "r"}
        )
        token = context.attach(trace.set_span_in_context(span))
        span.update_name("GET /x")
        span.set_attributes({"http.route": "/x", "http.response.status_code": 200})
        span.end()
        context.detach(token)
    made = time.process_time() - start
    provider.force_flush()
    batches = [kept.spans[i : i + 512] for i in range(0, len(kept.spans), 512)]
    start = time.process_time()
    for batch in batches:
        encode_spans(batch).SerializeToString()
    encoded = time.process_time() - start
    provider.shutdown()
    return {"make": made / spans * 1e6, "encode": encoded / max(len(kept.spans), 1) * 1e6}


def best_capacities(sdk: dict[str, float], cpu: dict[str, dict[str, list[float]]]) -> dict[str, dict[float, float]]:
    """Per route and ratio, the in-process capacity (off µs over traced µs) a tracer that cost
    nothing but the SDK's make and encode µs of the route's spans would keep."""
    per_span = sdk["make"] + sdk["encode"]
    best: dict[str, dict[float, float]] = {}
    for name, spans in SPANS_PER_REQUEST.items():
        off = cpu.get(name, {}).get("off")
        if off:
            median = statistics.median(off)
            best[name] = {ratio: median / (median + ratio * spans * per_span) for ratio in (0.01, 1.0)}
    return best


def render_sdk(sdk: dict[str, float], cpu: dict[str, dict[str, list[float]]]) -> str:
    """The SDK's own µs per span, and per route the capacity left by those µs alone, beside FrameX's."""
    lines = [
        f"The OpenTelemetry SDK alone, per span: making it {sdk['make']:.1f} µs, the OTLP exporter encoding it "
        f"{sdk['encode']:.1f} µs (CPU, {SDK_SPANS:,} spans).",
        "",
        "| route | spans per recorded request | best 0.01 / off | FrameX 0.01 / off "
        "| best 1.0 / off | FrameX 1.0 / off |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, by_ratio in best_capacities(sdk, cpu).items():
        medians = {key: statistics.median(values) for key, values in cpu[name].items() if values}
        framex = {ratio: medians["off"] / medians[key] for ratio, key in ((0.01, "ratio_001"), (1.0, "ratio_1"))}
        lines.append(
            f"| {name} | {SPANS_PER_REQUEST[name]} | {by_ratio[0.01]:.3f}x | {framex[0.01]:.3f}x "
            f"| {by_ratio[1.0]:.3f}x | {framex[1.0]:.3f}x |"
        )
    return "\n".join(lines)


def floor_notes(sdk: dict[str, float], cpu: dict[str, dict[str, list[float]]]) -> list[str]:
    """Where a bar lies beyond what the SDK's own µs per span allow, say so."""
    notes = []
    for name, by_ratio in best_capacities(sdk, cpu).items():
        for ratio, key in ((0.01, "ratio_001"), (1.0, "ratio_1")):
            bar = TARGETS[(key, "off")]
            if by_ratio[ratio] < bar:
                notes.append(
                    f"{name}: at sample_ratio {ratio} the SDK's make + encode µs alone leave {by_ratio[ratio]:.3f}x "
                    f"in-process, under the {bar}x bar: no tracer that makes its spans with the SDK reaches it here"
                )
    return notes


def verdicts(points: list[Point]) -> list[str]:
    notes = []
    for p in points:
        for (a, b), bar in TARGETS.items():
            ratio = p.ratio(a, b)
            if ratio is not None:
                verdict = "meets" if ratio >= bar else "is BELOW"
                notes.append(f"{p.scenario} c={p.concurrency}: {a} / {b} = {ratio:.3f}x {verdict} the {bar}x bar")
    return notes


def default_baseline() -> str:
    """The commit before the one that added ``framex/tracing.py``."""
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", "framex/tracing.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not added:
        raise SystemExit("no commit added framex/tracing.py here: give --baseline")
    return f"{added[-1]}^"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.tracing", description=__doc__.split("\n\n")[0])
    add_load_options(parser, FULL, DEFAULT_OUTPUT)
    parser.add_argument(
        "--baseline",
        help="git revision of a build without the tracing code path (default: the parent of the commit that added "
        "framex/tracing.py)",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", help=f"connections per route {FULL['concurrency']}")
    parser.add_argument("--requests", type=int, help=f"requests per in-process CPU measurement ({FULL['requests']})")
    args = parser.parse_args(argv)
    apply_profile(args, QUICK if args.quick else FULL)
    check_load_options(parser, args, args.concurrency)
    if args.baseline is None:
        args.baseline = default_baseline()
    if os.environ.get("FRAMEX_CONFIG"):
        parser.error("unset FRAMEX_CONFIG: the apps must run with the built-in defaults")
    return args


if __name__ == "__main__":
    run_cli(main, "interrupted; the servers were stopped")
