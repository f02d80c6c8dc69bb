"""The CPU cost of handing a sync function to a thread: ``await f.remote()`` against the usual ways.

A sync function (a no-op, or ``--work-ms`` of sleep) runs on a pool of 32 threads per
call, awaited by 1 or by 64 coroutines at once (each awaiting its share of the calls in
a loop, gathered), through:

- ``framex``: ``await f.remote()``, ``f`` a ``@remote()`` function, on the local backend
  (a container with ``local.max_workers: 32``, metrics and tracing off);
- ``plugin sync handler``: the runtime calling a plugin's sync handler as a request
  does (``PluginRuntime.invoke``: Starlette's ``run_in_threadpool``);
- ``to_thread``: ``asyncio.to_thread(f)``, the loop's default executor a 32-thread pool
  (as the plain FastAPI app of the HTTP benchmarks runs blocking work);
- ``run_in_executor``: ``loop.run_in_executor(pool, f)`` on a 32-thread pool, no context;
- ``run_in_threadpool``: Starlette's ``run_in_threadpool(f)`` (AnyIO's worker threads,
  its limiter set to 32 tokens).

Measured per call, over all the calls of one round: the process's CPU time (every
thread: the loop's dispatch, the pool's threads, the wake-ups), the loop thread's own CPU
time, and the wall time. Rounds take turns between the variants, the order rotating;
printed are the median and the min-max of the rounds, and ``framex`` over each peer
(ratio of the medians of the process CPU).

Run from the repository root::

    python -m bench.remote_dispatch                 # 7 rounds of 20,000 calls per variant and concurrency
    python -m bench.remote_dispatch --quick         # a smoke run
    python -m bench.remote_dispatch --work-ms 5 --levels 64 --calls 3200
                                                    # jobs holding their thread 5 ms, 64 at once on 32 threads
    python -m bench.remote_dispatch --loop asyncio  # on asyncio's loop instead of uvloop

To compare two checkouts, run the module with the other checkout first on the path
(``PYTHONPATH=/path/to/other python -m bench.remote_dispatch``, from a directory other
than the repository root so that its ``framex`` is the one imported). Results:
``bench/results/remote_dispatch.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.concurrency import run_in_threadpool

import framex
from bench.common import RESULTS, command_line, machine, print_results, run_cli, source_state, spread, versions
from bench.common import write_report as write_json
from framex import remote
from framex.container import close_container

THREADS = 32
LEVELS = (1, 64)
VARIANTS = ("framex", "plugin sync handler", "to_thread", "run_in_executor", "run_in_threadpool")
PEERS = ("to_thread", "run_in_executor", "run_in_threadpool")

Call = Callable[[], Awaitable[Any]]

_work_seconds = 0.0


def job() -> None:
    """The work each call hands to a thread: nothing, or a sleep of ``--work-ms``."""
    if _work_seconds:
        time.sleep(_work_seconds)


remote_job = remote()(job)


class Sample:
    """One round of one variant at one concurrency: microseconds per call."""

    __slots__ = ("cpu", "loop_cpu", "wall")

    def __init__(self, cpu: float, loop_cpu: float, wall: float) -> None:
        self.cpu = cpu
        self.loop_cpu = loop_cpu
        self.wall = wall


async def run(call: Call, calls: int, concurrency: int) -> Sample:
    """``calls`` awaits of ``call()``, ``concurrency`` at a time."""

    async def worker(count: int) -> None:
        for _ in range(count):
            await call()

    share = calls // concurrency
    wall, cpu, loop_cpu = time.perf_counter(), time.process_time(), time.thread_time()
    await asyncio.gather(*(worker(share) for _ in range(concurrency)))
    done = share * concurrency
    return Sample(
        (time.process_time() - cpu) / done * 1e6,
        (time.thread_time() - loop_cpu) / done * 1e6,
        (time.perf_counter() - wall) / done * 1e6,
    )


async def measure(rounds: int, calls: int, levels: tuple[int, ...]) -> dict[int, dict[str, list[Sample]]]:
    container = framex.create_container(
        None,
        load_builtin_plugins=[],
        load_plugins=["bench.apps.call_callee"],
        local__max_workers=THREADS,
        metrics__enabled=False,
    )
    loop = asyncio.get_running_loop()
    default = ThreadPoolExecutor(THREADS)
    own = ThreadPoolExecutor(THREADS)
    loop.set_default_executor(default)
    anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
    results: dict[int, dict[str, list[Sample]]] = {c: {name: [] for name in VARIANTS} for c in levels}
    try:
        with framex.use_container(container):
            runtime = container.runtime()
            await runtime.start()
            sync_api = runtime.registry.get_api("call_callee.sync_noop")
            variants: dict[str, Call] = {
                "framex": lambda: remote_job.remote(),
                "plugin sync handler": lambda: runtime.invoke(sync_api, {"seconds": _work_seconds}),
                "to_thread": lambda: asyncio.to_thread(job),
                "run_in_executor": lambda: loop.run_in_executor(own, job),
                "run_in_threadpool": lambda: run_in_threadpool(job),
            }
            for concurrency in levels:
                for call in variants.values():  # warm-up: every pool's threads started
                    await run(call, max(2 * THREADS, calls // 10), concurrency)
                for i in range(rounds):
                    order = [*VARIANTS[i % len(VARIANTS) :], *VARIANTS[: i % len(VARIANTS)]]
                    for name in order:
                        results[concurrency][name].append(await run(variants[name], calls, concurrency))
    finally:
        close_container(container)
        own.shutdown()
        default.shutdown()
    return results


def table(results: dict[int, dict[str, list[Sample]]]) -> str:
    lines = [
        "| concurrency | variant | process CPU µs/call | loop thread CPU µs/call | wall µs/call"
        " | framex ÷ variant (CPU) |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for concurrency, by_variant in results.items():
        mine = statistics.median(s.cpu for s in by_variant["framex"])
        for name, samples in by_variant.items():
            cells = []
            for attr in ("cpu", "loop_cpu", "wall"):
                values = [getattr(s, attr) for s in samples]
                cells.append(f"{statistics.median(values):.1f} ({spread(values, '.1f')})")
            ratio = f"{mine / statistics.median(s.cpu for s in samples):.2f}x" if name != "framex" else ""
            lines.append(f"| {concurrency} | {name} | {' | '.join(cells)} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    global _work_seconds
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20_000, help="calls per round of each variant")
    parser.add_argument("--work-ms", type=float, default=0.0, help="how long each job sleeps (default: a no-op)")
    parser.add_argument("--levels", type=int, nargs="+", default=list(LEVELS), help="concurrency levels (1 64)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 4,000 calls")
    parser.add_argument("--json", type=str, default=str(RESULTS / "remote_dispatch.json"), help="where results go")
    args = parser.parse_args(argv)
    rounds, calls = (2, 4_000) if args.quick else (args.rounds, args.calls)
    _work_seconds = args.work_ms / 1000
    print(f"framex {framex.__file__}", file=sys.stderr)
    if args.loop == "uvloop":
        import uvloop

        results = uvloop.run(measure(rounds, calls, tuple(args.levels)))
    else:
        results = asyncio.run(measure(rounds, calls, tuple(args.levels)))
    command = command_line("bench.remote_dispatch", argv)
    note = f"{rounds} rounds of {calls:,} calls, {THREADS} threads, loop {args.loop}, work {args.work_ms} ms"
    print_results(table(results), notes=[f"{note}; command: `{command}`"])
    report = {
        "command": command,
        "loop": args.loop,
        "rounds": rounds,
        "calls": calls,
        "work_ms": args.work_ms,
        "threads": THREADS,
        "us_per_call": {
            str(c): {name: [vars_of(s) for s in samples] for name, samples in by_variant.items()}
            for c, by_variant in results.items()
        },
        "machine": machine(),
        "versions": versions("fastapi", "starlette", "anyio", "uvloop"),
        "source": source_state(),
    }
    write_json(Path(args.json), report)
    return 0


def vars_of(sample: Sample) -> dict[str, float]:
    return {"cpu": sample.cpu, "loop_cpu": sample.loop_cpu, "wall": sample.wall}


if __name__ == "__main__":
    run_cli(main, "remote_dispatch: interrupted")
