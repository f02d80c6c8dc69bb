"""Per-call cost of FrameX's ``@remote`` on Ray against a raw ``ray.remote`` function.

One process starts a private Ray instance (2 CPUs, 127.0.0.1) through FrameX and
awaits trivial tasks (``x + 1``, ``bench/apps/ray_work.py``) the same way in every
variant: sequentially (``await f.remote(i)``, one at a time) and concurrently
(``asyncio.gather`` of a batch). Within each round the variants take turns in slices
(so other load hits them alike), a round disturbed by other processes is taken again, and
medians over the rounds are reported.

Run from the repository root::

    python -m bench.ray_remote            # full run, about 2 minutes
    python -m bench.ray_remote --quick    # smoke run

The table goes to stdout, progress to stderr, everything to ``bench/results/ray_remote.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    OTHER_LOAD_LIMIT,
    RESULTS,
    RETRY_PAUSE,
    apply_profile,
    command_line,
    disturbed,
    machine,
    num,
    print_results,
    run_cli,
    source_state,
    timestamp,
    versions,
    worst,
    write_report,
)
from bench.loadgen import cpu_shares, process_tree, usage

DEFAULT_OUTPUT = RESULTS / "ray_remote.json"
TARGET = 1.15
"""FrameX's time per call may be at most this multiple of its reference's."""

FULL = {"calls": 300, "slices": 6, "runs": 7, "batch": 200, "batches": 5, "warmup_calls": 300}
QUICK = {"calls": 100, "slices": 4, "runs": 2, "batch": 100, "batches": 2, "warmup_calls": 100}

Call = Callable[[int], Awaitable[Any]]


@dataclass(frozen=True)
class Variant:
    """One way of running the work, and the variant its ratio is taken against."""

    key: str
    label: str
    reference: str | None
    call: Call


@dataclass
class Sample:
    """One measurement of one variant: ``calls`` calls in ``seconds``."""

    variant: str
    mode: str
    """``sequential`` or ``concurrent``."""
    calls: int
    seconds: float
    driver_cpu_s: float
    """CPU time of this process (the Ray driver, all its threads)."""
    ray_cpu: float | None
    """Cores used by this process and every Ray process it started."""
    other_cpu: float | None
    """Cores used meanwhile by everything else on the machine."""
    steal: float | None

    @property
    def us_per_call(self) -> float:
        return self.seconds * 1e6 / self.calls

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.seconds

    @property
    def driver_us_per_call(self) -> float:
        return self.driver_cpu_s * 1e6 / self.calls

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "us_per_call": self.us_per_call,
            "calls_per_s": self.calls_per_s,
            "driver_us_per_call": self.driver_us_per_call,
        }


def variants() -> list[Variant]:
    """The variants; call after Ray has started (this imports ``ray``)."""
    import ray

    from bench.apps.ray_work import RawWorker, Worker, inc, raw_inc, raw_method

    # The same options FrameX's Ray adapter gives its tasks (no retry).
    raw = ray.remote(max_retries=0)(raw_inc)
    raw_bound = ray.remote(max_retries=0)(raw_method)
    return [
        Variant("raw", "raw `ray.remote` function", None, lambda i: raw.remote(i)),
        Variant("function", "FrameX `@remote` function", "raw", lambda i: inc.remote(i)),
        Variant(
            "method", "FrameX `@remote` method, new instance per call", "function", lambda i: Worker().inc.remote(i)
        ),
        Variant(
            "raw_method", "raw `ray.remote`, instance as argument", "raw", lambda i: raw_bound.remote(RawWorker(), i)
        ),
    ]


def _no_client() -> float:
    return 0.0


async def _round(all_variants: list[Variant], mode: str, run: int, args: argparse.Namespace) -> list[Sample]:
    """One round of one mode: every variant, in ``--slices`` interleaved slices.

    Slice after slice, each variant makes its share of the calls (sequential) or one
    ``gather`` batch (concurrent), the order rotating, so that a burst of other load falls
    on all variants alike. Returns one sample per variant; the CPU shares are the round's.
    """
    slices = args.slices if mode == "sequential" else args.batches
    per_slice = max(1, args.calls // slices)
    totals = {v.key: [0.0, 0.0, 0] for v in all_variants}  # seconds, driver CPU seconds, calls
    pid = os.getpid()
    before = usage(pid, _no_client, tree=True)
    for piece in range(slices):
        shift = (run + piece) % len(all_variants)
        for variant in all_variants[shift:] + all_variants[:shift]:
            call = variant.call
            cpu0, t0 = time.process_time(), time.perf_counter()
            if mode == "sequential":
                for i in range(per_slice):
                    await call(i)
                calls = per_slice
            else:
                await asyncio.gather(*(call(i) for i in range(args.batch)))
                calls = args.batch
            total = totals[variant.key]
            total[0] += time.perf_counter() - t0
            total[1] += time.process_time() - cpu0
            total[2] += calls
    shares = cpu_shares(before, usage(pid, _no_client, tree=True))
    return [
        Sample(key, mode, int(calls), seconds, cpu, shares["server_cpu"], shares["other_cpu"], shares["steal"])
        for key, (seconds, cpu, calls) in totals.items()
    ]


async def measure(all_variants: list[Variant], mode: str, run: int, args: argparse.Namespace) -> list[Sample]:
    """One round, taken again (up to ``--retries`` times) while other processes disturb it."""
    attempts: list[list[Sample]] = []
    while len(attempts) <= args.retries:
        samples = await _round(all_variants, mode, run, args)
        attempts.append(samples)
        other = samples[0].other_cpu
        rates = "  ".join(
            f"{s.variant} {s.us_per_call:,.0f} µs" if mode == "sequential" else f"{s.variant} {s.calls_per_s:,.0f}/s"
            for s in samples
        )
        print(
            f"  {mode:10} run {run + 1}/{args.runs}  {rates}  ray {num(samples[0].ray_cpu, '.2f')} "
            f"other {num(other, '.2f')}{'  (disturbed)' if disturbed(other) else ''}",
            file=sys.stderr,
            flush=True,
        )
        if not disturbed(other):
            break
        if len(attempts) <= args.retries:
            await asyncio.sleep(RETRY_PAUSE)
    return min(attempts, key=lambda a: a[0].other_cpu or 0.0)


async def warm_up(all_variants: list[Variant], args: argparse.Namespace) -> None:
    """Start the task workers, ship every function to them, and check each variant's answer."""
    for variant in all_variants:
        for i in range(args.warmup_calls):
            got = await variant.call(i)
            if got != i + 1:
                raise RuntimeError(f"{variant.key}: call({i}) returned {got!r}, expected {i + 1}")
        await asyncio.gather(*(variant.call(i) for i in range(args.batch)))


async def run_all(all_variants: list[Variant], args: argparse.Namespace) -> list[Sample]:
    """``--runs`` rounds, each sequential then concurrent; the variants interleave within a round."""
    await warm_up(all_variants, args)
    samples: list[Sample] = []
    for run in range(args.runs):
        for mode in ("sequential", "concurrent"):
            samples += await measure(all_variants, mode, run, args)
    return samples


# -- reporting ----------------------------------------------------------------------


def _median(samples: list[Sample], key: str, mode: str, attr: str) -> float | None:
    values = [getattr(s, attr) for s in samples if s.variant == key and s.mode == mode]
    return statistics.median(values) if values else None


def _paired_ratio(samples: list[Sample], key: str, ref: str, mode: str, attr: str) -> float | None:
    """Median over runs of ``key``'s value over ``ref``'s in the same run (drift cancels out)."""
    mine = [getattr(s, attr) for s in samples if s.variant == key and s.mode == mode]
    theirs = [getattr(s, attr) for s in samples if s.variant == ref and s.mode == mode]
    ratios = [a / b for a, b in zip(mine, theirs, strict=False) if b]
    return statistics.median(ratios) if ratios else None


def summarize(all_variants: list[Variant], samples: list[Sample]) -> dict[str, dict[str, Any]]:
    """Per variant: medians, and ratios against its reference (time per call, throughput)."""
    summary: dict[str, dict[str, Any]] = {}
    for v in all_variants:
        entry: dict[str, Any] = {
            "label": v.label,
            "reference": v.reference,
            "sequential_us_per_call": _median(samples, v.key, "sequential", "us_per_call"),
            "sequential_driver_us_per_call": _median(samples, v.key, "sequential", "driver_us_per_call"),
            "concurrent_calls_per_s": _median(samples, v.key, "concurrent", "calls_per_s"),
            "concurrent_driver_us_per_call": _median(samples, v.key, "concurrent", "driver_us_per_call"),
        }
        if v.reference is not None:
            ref = summary[v.reference]
            seq, conc = entry["sequential_us_per_call"], entry["concurrent_calls_per_s"]
            entry["time_ratio"] = seq / ref["sequential_us_per_call"] if seq and ref["sequential_us_per_call"] else None
            entry["throughput_ratio"] = (
                conc / ref["concurrent_calls_per_s"] if conc and ref["concurrent_calls_per_s"] else None
            )
            entry["paired_time_ratio"] = _paired_ratio(samples, v.key, v.reference, "sequential", "us_per_call")
            entry["paired_throughput_ratio"] = _paired_ratio(samples, v.key, v.reference, "concurrent", "calls_per_s")
        summary[v.key] = entry
    return summary


def _ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "n/a"


def render_table(all_variants: list[Variant], summary: dict[str, dict[str, Any]], batch: int) -> str:
    """The Markdown table of medians and ratios."""
    labels = {v.key: v.label for v in all_variants}
    lines = [
        f"| call | compared with | sequential µs/call | time ratio | driver CPU µs/call "
        f"| gather({batch}) calls/s | throughput ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for v in all_variants:
        e = summary[v.key]
        ref = labels[v.reference] if v.reference else "-"
        lines.append(
            f"| {v.label} | {ref} | {num(e['sequential_us_per_call'], ',.0f')} "
            f"| {_ratio(e.get('time_ratio')) if v.reference else '-'} "
            f"| {num(e['sequential_driver_us_per_call'], ',.0f')} | {num(e['concurrent_calls_per_s'], ',.0f')} "
            f"| {_ratio(e.get('throughput_ratio')) if v.reference else '-'} |"
        )
    return "\n".join(lines)


def render_diagnostics(all_variants: list[Variant], samples: list[Sample]) -> str:
    """Spread over the runs, CPU of the Ray side, and the worst interference."""
    lines = [
        "| call | mode | runs | min | median | max | unit | Ray+driver CPU (cores) | max other load |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for v in all_variants:
        for mode, attr, unit in (("sequential", "us_per_call", "µs/call"), ("concurrent", "calls_per_s", "calls/s")):
            mine = [s for s in samples if s.variant == v.key and s.mode == mode]
            values = sorted(getattr(s, attr) for s in mine)
            if not values:
                continue
            ray_cpu = [s.ray_cpu for s in mine if s.ray_cpu is not None]
            lines.append(
                f"| {v.key} | {mode} | {len(values)} | {values[0]:,.0f} | {statistics.median(values):,.0f} "
                f"| {values[-1]:,.0f} | {unit} | {num(statistics.median(ray_cpu) if ray_cpu else None, '.2f')} "
                f"| {num(worst(mine, 'other_cpu'), '.2f')} |"
            )
    return "\n".join(lines)


def verdicts(summary: dict[str, dict[str, Any]], samples: list[Sample], args: argparse.Namespace) -> list[str]:
    """The notes printed under the tables."""
    notes = []
    for key, what in (
        ("function", "FrameX function vs raw ray.remote"),
        ("method", "FrameX method vs FrameX function"),
    ):
        e = summary.get(key)
        if e is None or e.get("time_ratio") is None:
            continue
        verdict = "meets" if e["time_ratio"] <= TARGET else "MISSES"
        notes.append(
            f"{what}: sequential time ratio {e['time_ratio']:.3f}x (paired per run: "
            f"{num(e['paired_time_ratio'], '.3f')}x) {verdict} the <= {TARGET}x target; "
            f"concurrent throughput ratio {num(e['throughput_ratio'], '.3f')}x"
        )
    per_round = len(summary)  # one sample per variant and round
    kept = sum(1 for s in samples if disturbed(s.other_cpu)) // per_round
    if kept:
        notes.append(
            f"{kept} of {len(samples) // per_round} round(s) ran while other processes used > {OTHER_LOAD_LIMIT} "
            f"core even after {args.retries} retries: rerun on a quiet machine before trusting small differences"
        )
    return notes


# -- Ray lifecycle ------------------------------------------------------------------


def start_private_ray(num_cpus: int) -> float:
    """Start FrameX's private Ray instance (before anything imports ``ray``); return the seconds it took."""
    if "ray" in sys.modules:
        raise RuntimeError("ray was imported before FrameX configured it (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER)")
    import framex
    from framex.adapters.ray import start_ray

    container = framex.create_container(
        None,
        adapter="ray",
        ray={"num_cpus": num_cpus, "log_to_driver": False},
        load_plugins=[],
        load_builtin_plugins=[],
    )
    framex.use_container(container)
    started = time.perf_counter()
    start_ray(container.settings())
    return time.perf_counter() - started


def stop_private_ray(grace: float = 20.0) -> list[str]:
    """Shut Ray down and wait for every process it started to exit; kill (and return) leftovers."""
    from framex.adapters.ray import stop_ray

    children = process_tree(os.getpid())[1:]
    stop_ray()
    deadline = time.monotonic() + grace
    while (alive := [pid for pid in children if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    killed = []
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            killed.append(str(pid))
    return killed


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# -- main ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ray_remote",
        description="Per-call cost of FrameX's @remote on Ray against a raw ray.remote function.",
    )
    parser.add_argument("--calls", type=int, help=f"sequential calls per measurement ({FULL['calls']})")
    parser.add_argument(
        "--slices", type=int, help=f"slices the sequential calls are made in, interleaved ({FULL['slices']})"
    )
    parser.add_argument("--batch", type=int, help=f"calls per asyncio.gather ({FULL['batch']})")
    parser.add_argument("--batches", type=int, help=f"gathers per concurrent measurement ({FULL['batches']})")
    parser.add_argument(
        "--runs", type=int, help=f"measurements per variant and mode; medians reported ({FULL['runs']})"
    )
    parser.add_argument(
        "--warmup-calls", type=int, help=f"sequential calls per variant before measuring ({FULL['warmup_calls']})"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help=f"times a measurement is taken again when other processes used > {OTHER_LOAD_LIMIT} core (2)",
    )
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the private Ray instance (2)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run (explicit options still win)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON results")
    args = parser.parse_args(argv)
    apply_profile(args, QUICK if args.quick else FULL)
    if min(args.calls, args.slices, args.batch, args.batches, args.runs, args.num_cpus) < 1 or args.warmup_calls < 0:
        parser.error("sizes must be >= 1 (--warmup-calls >= 0)")
    if args.retries < 0:
        parser.error("--retries must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Start Ray, measure, stop Ray, print the tables, write the JSON file."""
    args = parse_args(argv)
    started = time.time()
    print(f"starting a private Ray instance ({args.num_cpus} CPUs, 127.0.0.1) ...", file=sys.stderr, flush=True)
    leftovers: list[str] = []
    try:
        ray_start_s = start_private_ray(args.num_cpus)
        print(
            f"Ray started in {ray_start_s:.1f} s; {args.runs} run(s): {args.calls} sequential calls, "
            f"{args.batches} x gather({args.batch}) per variant",
            file=sys.stderr,
            flush=True,
        )
        all_variants = variants()
        samples = asyncio.run(run_all(all_variants, args))
    finally:
        leftovers = stop_private_ray()
    if leftovers:
        print(f"warning: killed Ray processes left after shutdown: {', '.join(leftovers)}", file=sys.stderr)

    summary = summarize(all_variants, samples)
    table, diagnostics = render_table(all_variants, summary, args.batch), render_diagnostics(all_variants, samples)
    notes = verdicts(summary, samples, args)
    print_results(table, diagnostics, notes=notes)

    report = {
        "command": command_line("bench.ray_remote", argv),
        "started": timestamp(started),
        "seconds": round(time.time() - started, 1),
        "settings": {
            "calls": args.calls,
            "slices": args.slices,
            "batch": args.batch,
            "batches": args.batches,
            "runs": args.runs,
            "warmup_calls": args.warmup_calls,
            "retries": args.retries,
            "other_load_limit": OTHER_LOAD_LIMIT,
            "ray": {"num_cpus": args.num_cpus, "address": "local (private)", "node_ip": "127.0.0.1"},
        },
        "ray_start_seconds": ray_start_s,
        "leftover_processes_killed": leftovers,
        "machine": machine(),
        "versions": versions("framex", "ray"),
        "source": source_state(),
        "summary": summary,
        "notes": notes,
        "samples": [s.to_dict() for s in samples],
        "table": table,
    }
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    run_cli(main, "interrupted; Ray was shut down")
