"""CPU-bound fan-out across FrameX's backends, and the cost of ``.map`` against ``asyncio.gather``.

1. Fan-out: a pure-Python job calibrated to about ``--job-ms`` (50 ms) on this machine,
   run ``--fanout`` (32) times with ``await job.map([n] * 32)`` on the local thread
   executor, the local process executor (``--processes`` workers, warm) and Ray (warm), and
   as a plain sequential loop. The variants alternate within each run; wall time, jobs/s
   and the speed-up over threads and over the loop are reported (medians of ``--runs``).
2. ``.map`` overhead: ``await f.map(items)`` against
   ``await asyncio.gather(*(f.remote(i) for i in items))`` (and ``.map(items, concurrency=16)``)
   for ``--map-items`` (1,000) trivial items, sync (thread pool) and async (on the loop).

Run from the repository root::

    python -m bench.remote_fanout            # full run, about 2 minutes
    python -m bench.remote_fanout --quick    # smoke run, about 20 seconds

The tables go to stdout, progress to stderr, everything to ``bench/results/remote_fanout.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import multiprocessing
import os
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.apps.cpu_jobs import aecho, cpu_job, echo, spin
from bench.common import (
    OTHER_LOAD_LIMIT,
    RESULTS,
    RETRY_PAUSE,
    apply_profile,
    disturbed,
    machine,
    num,
    run_cli,
    source_state,
    timestamp,
    versions,
    worst,
    write_report,
)
from bench.loadgen import Usage, cpu_shares, process_tree, usage

DEFAULT_OUTPUT = RESULTS / "remote_fanout.json"
SPEEDUP_TARGET = 1.7
"""Process and Ray fan-out must be at least this much faster than the thread executor (2 cores)."""
MAP_TARGET = 1.2
""".map's time per item may be at most this multiple of asyncio.gather's."""
MAP_CONCURRENCY = 16

FULL = {"job_ms": 50.0, "fanout": 32, "runs": 7, "map_items": 1000, "map_runs": 25, "map_sample_s": 0.25, "warmup": 2}
QUICK = {"job_ms": 10.0, "fanout": 8, "runs": 1, "map_items": 200, "map_runs": 3, "map_sample_s": 0.05, "warmup": 1}

Fanout = Callable[[list[int]], Awaitable[list[int]]]
MapCall = Callable[[list[int]], Awaitable[list[Any]]]


# -- measuring ----------------------------------------------------------------------


@dataclass
class Sample:
    """One measurement: ``calls`` calls of ``items`` items each (a fan-out is one call) in ``seconds``."""

    section: str
    """``fanout`` or ``map``."""
    variant: str
    run: int
    items: int
    calls: int
    seconds: float
    driver_cpu_s: float
    """CPU time of this process (all its threads)."""
    tree_cpu: float | None
    """Cores used by this process and its children (worker processes, Ray)."""
    other_cpu: float | None
    """Cores used meanwhile by everything else on the machine."""
    steal: float | None

    @property
    def per_call_s(self) -> float:
        return self.seconds / self.calls

    @property
    def items_per_s(self) -> float:
        return self.items * self.calls / self.seconds

    @property
    def us_per_item(self) -> float:
        return self.seconds * 1e6 / (self.items * self.calls)

    @property
    def cpu_us_per_item(self) -> float:
        return self.driver_cpu_s * 1e6 / (self.items * self.calls)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "per_call_s": self.per_call_s,
            "items_per_s": self.items_per_s,
            "us_per_item": self.us_per_item,
            "cpu_us_per_item": self.cpu_us_per_item,
        }


def _no_client() -> float:
    return 0.0


def _usage() -> Usage:
    return usage(os.getpid(), _no_client, tree=True)


async def _once(section: str, key: str, call: Callable[[], Awaitable[Any]], items: int, calls: int, run: int) -> Sample:
    gc.collect()
    before = _usage()
    cpu0, t0 = time.process_time(), time.perf_counter()
    for _ in range(calls):
        await call()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    shares = cpu_shares(before, _usage())
    return Sample(
        section, key, run, items, calls, seconds, cpu, shares["server_cpu"], shares["other_cpu"], shares["steal"]
    )


async def measure(
    section: str,
    key: str,
    call: Callable[[], Awaitable[Any]],
    items: int,
    calls: int,
    run: int,
    args: argparse.Namespace,
) -> Sample:
    """One measurement, taken again (up to ``--retries`` times) while other processes disturb it."""
    attempts: list[Sample] = []
    while len(attempts) <= args.retries:
        sample = await _once(section, key, call, items, calls, run)
        attempts.append(sample)
        rate = (
            f"{sample.seconds:7.3f} s  {sample.items_per_s:7.1f} jobs/s"
            if section == "fanout"
            else f"{sample.us_per_item:7.2f} µs/item  cpu {sample.cpu_us_per_item:6.2f} µs/item"
        )
        print(
            f"  {section:6} run {run + 1:2} {key:16} {rate}  cores {num(sample.tree_cpu, '.2f')} "
            f"other {num(sample.other_cpu, '.2f')}{'  (disturbed)' if disturbed(sample.other_cpu) else ''}",
            file=sys.stderr,
            flush=True,
        )
        if not disturbed(sample.other_cpu):
            break
        if len(attempts) <= args.retries:
            await asyncio.sleep(RETRY_PAUSE)
    return min(attempts, key=lambda s: s.other_cpu or 0.0)


def _rotated(keys: Sequence[str], run: int) -> list[str]:
    shift = run % len(keys)
    return [*keys[shift:], *keys[:shift]]


# -- section 1: CPU-bound fan-out -----------------------------------------------------


def _timed(n: int) -> tuple[float, float]:
    """CPU and wall milliseconds of one ``spin(n)`` call."""
    cpu0, t0 = time.thread_time(), time.perf_counter()
    spin(n)
    return (time.thread_time() - cpu0) * 1e3, (time.perf_counter() - t0) * 1e3


def calibrate(target_ms: float) -> dict[str, Any]:
    """The loop count for which one ``spin`` call takes about ``target_ms`` here, and what it took.

    Sized by CPU time, which other processes on the machine disturb far less than wall time.
    """
    n = 100_000
    for _ in range(2):
        n = max(1, round(n * target_ms / statistics.median(_timed(n)[0] for _ in range(5))))
    check = [_timed(n) for _ in range(5)]
    walls = [wall for _, wall in check]
    return {
        "n": n,
        "target_ms": target_ms,
        "cpu_ms": statistics.median(cpu for cpu, _ in check),
        "min_ms": min(walls),
        "median_ms": statistics.median(walls),
    }


@dataclass(frozen=True)
class FanoutVariant:
    """One way of running the fan-out."""

    key: str
    label: str
    run: Fanout


async def _sequential(items: list[int]) -> list[int]:
    return [cpu_job(n) for n in items]  # the plain function, one call after the other


def fanout_variants(local: Any, ray: Any | None, plain: ProcessPoolExecutor | None = None) -> list[FanoutVariant]:
    """The variants; ``local`` and ``ray`` are the containers their calls go to.

    With ``plain`` (``--peers``), also the same fan-out without FrameX: ``asyncio.to_thread``,
    ``run_in_executor`` on the process pool ``plain``, and a raw ``ray.remote`` task.
    """
    import framex

    thread_job = cpu_job.options(executor="thread")
    process_job = cpu_job.options(executor="process")

    def on(container: Any, job: Any) -> Fanout:
        async def run(items: list[int]) -> list[int]:
            with framex.use_container(container):
                result: list[int] = await job.map(items)
            return result

        return run

    variants = [
        FanoutVariant("sequential", "sequential loop (direct calls)", _sequential),
        FanoutVariant("thread", "local, `executor='thread'`", on(local, thread_job)),
        FanoutVariant("process", "local, `executor='process'` (warm)", on(local, process_job)),
    ]
    if ray is not None:
        variants.append(FanoutVariant("ray", "Ray (warm)", on(ray, cpu_job)))
    if plain is not None:
        variants += plain_variants(plain, ray is not None)
    return variants


async def run_fanout(variants: list[FanoutVariant], n: int, args: argparse.Namespace) -> list[Sample]:
    """``--warmup`` unmeasured rounds, then ``--runs`` rounds of every variant in a rotating order."""
    items = [n] * args.fanout
    expected = [spin(n)] * args.fanout
    by_key = {v.key: v for v in variants}

    def call(variant: FanoutVariant) -> Callable[[], Awaitable[None]]:
        async def once() -> None:
            got = await variant.run(items)
            if got != expected:
                raise RuntimeError(f"{variant.key}: wrong results {got[:3]!r}..., expected {expected[0]!r}")

        return once

    for _ in range(args.warmup):
        for variant in variants:
            if variant.key != "sequential":
                await call(variant)()
    samples = []
    for run in range(args.runs):
        for key in _rotated(list(by_key), run):
            samples.append(await measure("fanout", key, call(by_key[key]), args.fanout, 1, run, args))
    return samples


def plain_variants(pool: ProcessPoolExecutor, with_ray: bool) -> list[FanoutVariant]:
    """The peers: the fan-out written with asyncio and Ray directly."""

    async def threads(items: list[int]) -> list[int]:
        return list(await asyncio.gather(*(asyncio.to_thread(spin, n) for n in items)))

    async def processes(items: list[int]) -> list[int]:
        loop = asyncio.get_running_loop()
        return list(await asyncio.gather(*(loop.run_in_executor(pool, spin, n) for n in items)))

    variants = [
        FanoutVariant("plain_thread", "plain `asyncio.to_thread`", threads),
        FanoutVariant("plain_process", "plain `ProcessPoolExecutor` (warm)", processes),
    ]
    if with_ray:
        import ray

        task = ray.remote(max_retries=0)(spin)

        async def raw_ray(items: list[int]) -> list[int]:
            return list(await asyncio.gather(*(task.remote(n) for n in items)))

        variants.append(FanoutVariant("raw_ray", "raw `ray.remote` (warm)", raw_ray))
    return variants


async def cold_process_call(local: Any, n: int) -> float:
    """Seconds of the first process-executor call: forkserver and worker start-up, imports, one job."""
    import framex

    with framex.use_container(local):
        t0 = time.perf_counter()
        await cpu_job.options(executor="process").remote(n)
        return time.perf_counter() - t0


async def cold_ray_call(ray: Any, n: int) -> float:
    """Seconds of the first Ray call after Ray started: the task is shipped and a worker imports it."""
    import framex

    with framex.use_container(ray):
        t0 = time.perf_counter()
        await cpu_job.remote(n)
        return time.perf_counter() - t0


async def idle_cpu(seconds: float) -> float | None:
    """Cores this process tree (Ray's processes included) uses while nothing is asked of it."""
    before = _usage()
    await asyncio.sleep(seconds)
    return cpu_shares(before, _usage())["server_cpu"]


# -- section 2: .map against asyncio.gather -------------------------------------------


def map_forms(fn: Any) -> dict[str, MapCall]:
    """The three ways of running ``fn`` over a list of items."""

    async def by_map(items: list[int]) -> list[Any]:
        return await fn.map(items)  # type: ignore[no-any-return]

    async def by_gather(items: list[int]) -> list[Any]:
        return await asyncio.gather(*(fn.remote(i) for i in items))

    async def by_bounded(items: list[int]) -> list[Any]:
        return await fn.map(items, concurrency=MAP_CONCURRENCY)  # type: ignore[no-any-return]

    return {"map": by_map, "gather": by_gather, f"map_c{MAP_CONCURRENCY}": by_bounded}


MAP_FUNCTIONS = {"sync": echo, "async": aecho}
MAP_LABELS = {
    "sync": "sync `echo` (local thread pool)",
    "async": "async `aecho` (on the loop)",
    "map": "`await f.map(items)`",
    "gather": "`await asyncio.gather(*(f.remote(i) ...))`",
    f"map_c{MAP_CONCURRENCY}": f"`await f.map(items, concurrency={MAP_CONCURRENCY})`",
}


async def _inner_calls(call: Callable[[], Awaitable[None]], sample_s: float) -> int:
    """How many calls make one measurement last about ``sample_s`` (from the fastest of 5)."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        await call()
        best = min(best, time.perf_counter() - t0)
    return max(1, math.ceil(sample_s / best))


async def run_map(local: Any, args: argparse.Namespace, inners: dict[str, int]) -> list[Sample]:
    """For each function, ``--map-runs`` rounds of the three call forms in a rotating order.

    One measurement is ``inner`` back-to-back calls (the same count for every form of a
    function), so that it lasts long enough for the CPU counters to tell interference.
    """
    import framex

    items = list(range(args.map_items))
    samples: list[Sample] = []
    with framex.use_container(local):
        for kind, fn in MAP_FUNCTIONS.items():
            forms = map_forms(fn)

            def call(form: MapCall, kind: str = kind) -> Callable[[], Awaitable[None]]:
                async def once() -> None:
                    got = await form(items)
                    if got != items:
                        raise RuntimeError(f"{kind}: results out of order or wrong")

                return once

            for _ in range(max(3, args.warmup * 3)):  # threads started, code paths warm
                for form in forms.values():
                    await call(form)()
            inner = args.map_inner or await _inner_calls(call(forms["gather"]), args.map_sample_s)
            inners[kind] = inner
            print(f"  {kind}: {inner} call(s) of {args.map_items} items per measurement", file=sys.stderr)
            for run in range(args.map_runs):
                for key in _rotated(list(forms), run):
                    samples.append(
                        await measure("map", f"{kind}:{key}", call(forms[key]), args.map_items, inner, run, args)
                    )
    return samples


# -- reporting ----------------------------------------------------------------------


def _values(samples: list[Sample], section: str, key: str, attr: str) -> list[float]:
    return [getattr(s, attr) for s in samples if s.section == section and s.variant == key]


def _median(samples: list[Sample], section: str, key: str, attr: str) -> float | None:
    values = _values(samples, section, key, attr)
    return statistics.median(values) if values else None


def _paired(samples: list[Sample], section: str, key: str, ref: str, attr: str) -> float | None:
    """Median over runs of ``key``'s value over ``ref``'s in the same run (slow drift cancels out)."""
    mine = {s.run: getattr(s, attr) for s in samples if s.section == section and s.variant == key}
    theirs = {s.run: getattr(s, attr) for s in samples if s.section == section and s.variant == ref}
    ratios = [mine[r] / theirs[r] for r in mine if theirs.get(r)]
    return statistics.median(ratios) if ratios else None


def summarize_fanout(variants: list[FanoutVariant], samples: list[Sample]) -> dict[str, dict[str, Any]]:
    """Per variant: median wall time, jobs/s, cores, and speed-ups over the thread executor and the loop."""
    summary: dict[str, dict[str, Any]] = {}
    for v in variants:
        wall = _median(samples, "fanout", v.key, "seconds")
        summary[v.key] = {
            "label": v.label,
            "wall_s": wall,
            "jobs_per_s": _median(samples, "fanout", v.key, "items_per_s"),
            "cores": _median(samples, "fanout", v.key, "tree_cpu"),
        }
    for key, entry in summary.items():
        for ref in ("thread", "sequential"):
            ref_wall = summary.get(ref, {}).get("wall_s")
            entry[f"speedup_vs_{ref}"] = ref_wall / entry["wall_s"] if ref_wall and entry["wall_s"] else None
            paired = _paired(samples, "fanout", ref, key, "seconds") if key != ref else 1.0
            entry[f"paired_speedup_vs_{ref}"] = paired
    return summary


def summarize_map(samples: list[Sample]) -> dict[str, dict[str, Any]]:
    """Per function and call form: median µs per item (wall and CPU) and the ratio to gather."""
    summary: dict[str, dict[str, Any]] = {}
    if not any(s.section == "map" for s in samples):
        return summary
    for kind in MAP_FUNCTIONS:
        for form in map_forms(echo):
            key, ref = f"{kind}:{form}", f"{kind}:gather"
            us, ref_us = _median(samples, "map", key, "us_per_item"), _median(samples, "map", ref, "us_per_item")
            cpu, ref_cpu = (_median(samples, "map", k, "cpu_us_per_item") for k in (key, ref))
            summary[key] = {
                "us_per_item": us,
                "cpu_us_per_item": cpu,
                "ratio_vs_gather": us / ref_us if us and ref_us else None,
                "paired_ratio_vs_gather": _paired(samples, "map", key, ref, "us_per_item"),
                "cpu_ratio_vs_gather": cpu / ref_cpu if cpu and ref_cpu else None,
            }
    return summary


def _x(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "n/a"


def _spread(samples: list[Sample], section: str, key: str, attr: str, fmt: str) -> str:
    values = _values(samples, section, key, attr)
    return f"{min(values):{fmt}}-{max(values):{fmt}}" if values else "n/a"


def render_fanout(variants: list[FanoutVariant], summary: dict[str, dict[str, Any]], samples: list[Sample]) -> str:
    """The Markdown table of the fan-out."""
    lines = [
        "| variant | wall s | min-max s | jobs/s | cores used | speed-up vs thread | speed-up vs sequential "
        "| max other load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for v in variants:
        e = summary[v.key]
        mine = [s for s in samples if s.section == "fanout" and s.variant == v.key]
        lines.append(
            f"| {v.label} | {num(e['wall_s'], '.3f')} | {_spread(samples, 'fanout', v.key, 'seconds', '.3f')} "
            f"| {num(e['jobs_per_s'], '.1f')} | {num(e['cores'], '.2f')} | {_x(e['speedup_vs_thread'])} "
            f"| {_x(e['speedup_vs_sequential'])} | {num(worst(mine, 'other_cpu'), '.2f')} |"
        )
    return "\n".join(lines)


def render_map(summary: dict[str, dict[str, Any]], samples: list[Sample]) -> str:
    """The Markdown table of ``.map`` against ``asyncio.gather``."""
    lines = [
        "| function | call form | µs/item | min-max µs | ratio vs gather | CPU µs/item | CPU ratio vs gather "
        "| max other load |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, e in summary.items():
        kind, form = key.split(":")
        mine = [s for s in samples if s.section == "map" and s.variant == key]
        lines.append(
            f"| {MAP_LABELS[kind]} | {MAP_LABELS[form]} | {num(e['us_per_item'], '.2f')} "
            f"| {_spread(samples, 'map', key, 'us_per_item', '.2f')} "
            f"| {'-' if form == 'gather' else _x(e['ratio_vs_gather'])} | {num(e['cpu_us_per_item'], '.2f')} "
            f"| {'-' if form == 'gather' else _x(e['cpu_ratio_vs_gather'])} | {num(worst(mine, 'other_cpu'), '.2f')} |"
        )
    return "\n".join(lines)


def quiet(samples: list[Sample]) -> list[Sample]:
    """The measurements no other process disturbed."""
    return [s for s in samples if not disturbed(s.other_cpu)]


def _count(samples: list[Sample], section: str, key: str) -> int:
    return sum(1 for s in samples if s.section == section and s.variant == key)


def verdicts(
    fanout: dict[str, dict[str, Any]],
    mapped: dict[str, dict[str, Any]],
    variants: list[FanoutVariant],
    samples: list[Sample],
    retries: int,
) -> list[str]:
    """The notes printed under the tables (with the same ratios from undisturbed measurements only)."""
    calm = quiet(samples)
    calm_fanout, calm_map = summarize_fanout(variants, calm), summarize_map(calm)
    notes = []
    for key in ("process", "ray"):
        e = fanout.get(key)
        if e is None or e["speedup_vs_thread"] is None:
            continue
        verdict = "meets" if e["speedup_vs_thread"] >= SPEEDUP_TARGET else "MISSES"
        c = calm_fanout[key]
        notes.append(
            f"{key} vs thread executor: {e['speedup_vs_thread']:.2f}x (paired per run: "
            f"{_x(e['paired_speedup_vs_thread'])}) {verdict} the >= {SPEEDUP_TARGET}x target (2 cores: at most 2x); "
            f"undisturbed measurements only ({_count(calm, 'fanout', key)} vs {_count(calm, 'fanout', 'thread')}): "
            f"{_x(c['speedup_vs_thread'])}, vs sequential {_x(c['speedup_vs_sequential'])}"
        )
    for kind in MAP_FUNCTIONS:
        e = mapped.get(f"{kind}:map")
        if e is None or e["ratio_vs_gather"] is None:
            continue
        verdict = "meets" if e["ratio_vs_gather"] <= MAP_TARGET else "MISSES"
        notes.append(
            f".map vs gather, {kind}: {e['ratio_vs_gather']:.3f}x (paired per run: "
            f"{_x(e['paired_ratio_vs_gather'])}; CPU time {_x(e['cpu_ratio_vs_gather'])}) {verdict} the "
            f"<= {MAP_TARGET}x target; undisturbed measurements only ({_count(calm, 'map', f'{kind}:map')} vs "
            f"{_count(calm, 'map', f'{kind}:gather')}): {_x(calm_map.get(f'{kind}:map', {}).get('ratio_vs_gather'))}"
        )
    kept = sum(1 for s in samples if disturbed(s.other_cpu))
    if kept:
        notes.append(
            f"{kept} of {len(samples)} measurement(s) ran while other processes used > {OTHER_LOAD_LIMIT} core "
            f"even after {retries} retries: rerun on a quiet machine before trusting small differences"
        )
    return notes


# -- lifecycle ------------------------------------------------------------------------


def _clear_framex_env() -> list[str]:
    """Remove ``FRAMEX*`` variables, so only the explicit overrides configure the containers."""
    removed = [name for name in os.environ if name.upper().startswith("FRAMEX")]
    for name in removed:
        del os.environ[name]
    return removed


def local_container(args: argparse.Namespace) -> Any:
    """The local backend: 32 threads, ``--processes`` worker processes, no plugins, no YAML."""
    import framex

    return framex.create_container(
        None,
        adapter="local",
        load_plugins=[],
        load_builtin_plugins=[],
        local={"max_workers": args.max_workers, "max_processes": args.processes, "executor": "thread"},
    )


def start_private_ray(num_cpus: int) -> tuple[Any, float]:
    """A Ray container with its private instance started (before anything imports ``ray``); and the seconds."""
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
    t0 = time.perf_counter()
    start_ray(container.settings())
    return container, time.perf_counter() - t0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def shut_down(local: Any | None, ray: Any | None, grace: float = 20.0) -> list[str]:
    """Close the worker pools, stop Ray, wait for every child to exit; kill (and return) leftovers.

    The multiprocessing forkserver and resource tracker are left alone: they exit with this process.
    """
    from framex.container import close_container

    children = process_tree(os.getpid())[1:]
    if local is not None:
        adapter = local.adapter()
        processes = adapter._processes  # waited for below, so no worker outlives the run
        close_container(local)
        if processes is not None:
            processes.shutdown(wait=True)
    if ray is not None:
        close_container(ray)
    if "ray" in sys.modules:  # also after a failed start
        from framex.adapters.ray import stop_ray

        stop_ray()
    helpers = _multiprocessing_helpers()
    deadline = time.monotonic() + grace
    while (alive := [p for p in children if p not in helpers and _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    killed = []
    for pid in alive:
        with contextlib.suppress(OSError):
            name = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
            os.kill(pid, signal.SIGKILL)
            killed.append(f"{pid} {name.strip()}")
    return killed


def _multiprocessing_helpers() -> set[int]:
    """The forkserver's and resource tracker's pids: both exit with this process."""
    from multiprocessing import forkserver, resource_tracker

    pids = (
        getattr(forkserver._forkserver, "_forkserver_pid", None),
        getattr(resource_tracker._resource_tracker, "_pid", None),
    )
    return {pid for pid in pids if pid}


# -- main ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.remote_fanout",
        description="CPU-bound fan-out on FrameX's backends, and .map against asyncio.gather.",
    )
    parser.add_argument("--job-ms", type=float, help=f"target duration of one CPU-bound job ({FULL['job_ms']})")
    parser.add_argument("--fanout", type=int, help=f"jobs per fan-out ({FULL['fanout']})")
    parser.add_argument("--runs", type=int, help=f"fan-out measurements per variant; medians reported ({FULL['runs']})")
    parser.add_argument("--warmup", type=int, help=f"unmeasured fan-out rounds per variant first ({FULL['warmup']})")
    parser.add_argument("--map-items", type=int, help=f"items per .map / gather ({FULL['map_items']})")
    parser.add_argument("--map-runs", type=int, help=f".map measurements per call form ({FULL['map_runs']})")
    parser.add_argument(
        "--map-inner",
        type=int,
        help="calls timed together in one .map measurement (default: enough for --map-sample-s)",
    )
    parser.add_argument(
        "--map-sample-s",
        type=float,
        help=f"seconds one .map measurement should last, to size --map-inner ({FULL['map_sample_s']})",
    )
    parser.add_argument("--processes", type=int, default=2, help="local process pool size (2)")
    parser.add_argument("--max-workers", type=int, default=32, help="local thread pool size (32)")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the private Ray instance (2)")
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=["map", "fanout"],
        default=["map", "fanout"],
        help="what to measure (both)",
    )
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray variant (Ray is then never imported)")
    parser.add_argument(
        "--peers", action="store_true", help="also the fan-out without FrameX: to_thread, a process pool, raw Ray"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help=f"times a measurement is taken again when other processes used > {OTHER_LOAD_LIMIT} core (2)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run (explicit options still win)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON results")
    args = parser.parse_args(argv)
    apply_profile(args, QUICK if args.quick else FULL)
    sizes = (args.fanout, args.runs, args.map_items, args.map_runs, args.map_inner or 1, args.processes)
    if (
        min(*sizes, args.max_workers, args.num_cpus) < 1
        or args.job_ms <= 0
        or args.map_sample_s <= 0
        or args.warmup < 0
    ):
        parser.error("sizes must be >= 1, --job-ms > 0, --warmup >= 0")
    if args.retries < 0:
        parser.error("--retries must be >= 0")
    return args


async def run_all(args: argparse.Namespace, local: Any, facts: dict[str, Any]) -> list[Sample]:
    """Section 2 first (nothing else started yet), then Ray's start and section 1."""
    samples: list[Sample] = []
    if "map" in args.sections:
        print(f".map overhead: {args.map_runs} run(s) per call form, {args.map_items} items", file=sys.stderr)
        samples += await run_map(local, args, facts.setdefault("map_inner", {}))
    if "fanout" not in args.sections:
        return samples

    calibration = facts["calibration"] = calibrate(args.job_ms)
    n = calibration["n"]
    print(
        f"calibrated: spin({n:,}) takes {calibration['cpu_ms']:.1f} ms of CPU, "
        f"{calibration['median_ms']:.1f} ms of wall time (median of 5)",
        file=sys.stderr,
        flush=True,
    )
    facts["process_cold_first_call_s"] = await cold_process_call(local, n)
    print(f"process executor, cold first call: {facts['process_cold_first_call_s']:.3f} s", file=sys.stderr)
    ray = None
    if not args.no_ray:
        print(f"starting a private Ray instance ({args.num_cpus} CPUs, 127.0.0.1) ...", file=sys.stderr, flush=True)
        ray, facts["ray_start_s"] = start_private_ray(args.num_cpus)
        facts["ray_container"] = ray
        facts["ray_cold_first_call_s"] = await cold_ray_call(ray, n)
        print(
            f"Ray started in {facts['ray_start_s']:.1f} s; first call {facts['ray_cold_first_call_s']:.3f} s",
            file=sys.stderr,
            flush=True,
        )
    plain = None
    if args.peers:
        # The default executor `asyncio.to_thread` uses, sized like FrameX's pool.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(args.max_workers))
        plain = ProcessPoolExecutor(args.processes, mp_context=multiprocessing.get_context("forkserver"))
    variants = facts["variants"] = fanout_variants(local, ray, plain)
    print(f"fan-out: {args.warmup} warm-up + {args.runs} run(s) of {args.fanout} jobs", file=sys.stderr, flush=True)
    try:
        samples += await run_fanout(variants, n, args)
    finally:
        if plain is not None:
            plain.shutdown(wait=True)
    if ray is not None:
        facts["ray_idle_cores"] = await idle_cpu(2.0)
    return samples


def main(argv: list[str] | None = None) -> int:
    """Measure, shut everything down, print the tables, write the JSON file."""
    args = parse_args(argv)
    cleared = _clear_framex_env()
    started = time.time()
    facts: dict[str, Any] = {}
    local = None
    try:
        local = local_container(args)
        samples = asyncio.run(run_all(args, local, facts))
    finally:
        leftovers = shut_down(local, facts.get("ray_container"))
    if leftovers:
        print(f"warning: killed processes left after shutdown: {', '.join(leftovers)}", file=sys.stderr)

    variants: list[FanoutVariant] = facts.get("variants", [])
    fanout, mapped = summarize_fanout(variants, samples), summarize_map(samples)
    tables: dict[str, str] = {}
    calibration = facts.get("calibration")
    if calibration is not None:
        tables["fanout"] = render_fanout(variants, fanout, samples)
        seq = fanout.get("sequential", {}).get("wall_s")
        cold = [f"process executor cold first call {facts['process_cold_first_call_s']:.3f} s"]
        if "ray_start_s" in facts:
            cold.append(
                f"Ray start {facts['ray_start_s']:.1f} s, then first call {facts['ray_cold_first_call_s']:.3f} s"
            )
            cold.append(f"Ray's processes idle afterwards: {num(facts.get('ray_idle_cores'), '.2f')} cores")
        print(
            f"### CPU-bound fan-out: {args.fanout} jobs of spin({calibration['n']:,}), medians of {args.runs} run(s)\n"
        )
        print(tables["fanout"])
        print(
            f"\nOne job: {calibration['cpu_ms']:.1f} ms of CPU at calibration, "
            f"{num(seq * 1e3 / args.fanout if seq else None, '.1f')} ms in the sequential loop; {'; '.join(cold)}.\n"
        )
    if mapped:
        tables["map"] = render_map(mapped, samples)
        print(f"### `.map` vs `asyncio.gather`: {args.map_items} trivial items, medians of {args.map_runs} run(s)\n")
        print(tables["map"])
        print()
    notes = verdicts(fanout, mapped, variants, samples, args.retries)
    for note in notes:
        print(f"- {note}")

    report = {
        "command": " ".join(["python -m bench.remote_fanout", *(argv if argv is not None else sys.argv[1:])]),
        "started": timestamp(started),
        "seconds": round(time.time() - started, 1),
        "settings": {
            **{k: getattr(args, k) for k in (*FULL, "processes", "max_workers", "num_cpus", "no_ray", "retries")},
            "peers": args.peers,
            "map_inner": facts.get("map_inner"),
            "map_concurrency": MAP_CONCURRENCY,
            "other_load_limit": OTHER_LOAD_LIMIT,
            "framex_env_cleared": cleared,
        },
        "calibration": calibration,
        "cold": {k: v for k, v in facts.items() if k.endswith("_s") or k == "ray_idle_cores"},
        "leftover_processes_killed": leftovers,
        "machine": machine(),
        "versions": versions("framex", "ray"),
        "source": source_state(),
        "fanout": fanout,
        "map": mapped,
        "fanout_undisturbed": summarize_fanout(variants, quiet(samples)),
        "map_undisturbed": summarize_map(quiet(samples)),
        "notes": notes,
        "samples": [s.to_dict() for s in samples],
        "tables": tables,
    }
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    run_cli(main, "interrupted; pools and Ray were shut down")
