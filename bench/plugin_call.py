"""The cost of one ``call_plugin_api`` between in-process plugins, against awaiting the handler directly.

A real container loads two plugins, ``bench/apps/call_callee.py`` (no-op handlers) and
``bench/apps/call_caller.py``; every measurement runs inside the caller's handler, so
each call is checked against its ``required_remote_apis`` as a plugin's call is. The
variants, awaited in a loop in rounds that take turns:

- ``direct``: the callee's async no-op handler awaited directly;
- ``by path`` / ``by name``: ``call_plugin_api("/api/v1/call/noop")`` and
  ``call_plugin_api("call_callee.noop")``;
- ``args direct`` / ``args by path``: a handler taking ``x`` and a defaulted ``label``,
  called with ``x=1``;
- ``sync run_in_threadpool`` / ``sync by path``: a sync no-op handler on a worker
  thread, through Starlette's ``run_in_threadpool`` and through ``call_plugin_api``
  (fewer calls: each is a thread round trip).

Printed: microseconds per call, the median and the min-max of the rounds, and each
variant's cost over its direct counterpart (the median of the per-round differences).

Run from the repository root::

    python -m bench.plugin_call               # 7 rounds of 100,000 calls (10,000 for the sync ones)
    python -m bench.plugin_call --quick       # a smoke run
    python -m bench.plugin_call --loop uvloop # on uvloop, as the HTTP benchmarks serve

To compare two checkouts, run the module with the other checkout first on the path
(``PYTHONPATH=/path/to/other python -m bench.plugin_call``); the first line on stderr
says which ``framex`` was measured. Results: ``bench/results/plugin_call.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

import framex
from bench.common import RESULTS, command_line, machine, print_results, run_cli, source_state, spread, versions
from bench.common import write_report as write_json
from framex import call_plugin_api
from framex.container import close_container

Call = Callable[[], Awaitable[Any]]

ASYNC = ("direct", "by path", "by name", "args direct", "args by path")
SYNC = ("sync run_in_threadpool", "sync by path")
OVER = {
    "by path": "direct",
    "by name": "direct",
    "args by path": "args direct",
    "sync by path": "sync run_in_threadpool",
}
"""Each variant and the direct call it is compared with."""


async def per_call(call: Call, calls: int) -> float:
    """Microseconds per call of ``call()`` awaited ``calls`` times in a row."""
    start = time.perf_counter()
    for _ in range(calls):
        await call()
    return (time.perf_counter() - start) / calls * 1e6


def variants(container: framex.Container) -> dict[str, Call]:
    """What each variant awaits, as one zero-argument callable each (the same frame count for all)."""
    runtime = container.runtime()
    registry = container.registry()
    noop = runtime.handler(registry.get_api("call_callee.noop"))
    args = runtime.handler(registry.get_api("call_callee.args"))
    sync = runtime.handler(registry.get_api("call_callee.sync_noop"))
    return {
        "direct": lambda: noop(),
        "by path": lambda: call_plugin_api("/api/v1/call/noop"),
        "by name": lambda: call_plugin_api("call_callee.noop"),
        "args direct": lambda: args(x=1),
        "args by path": lambda: call_plugin_api("/api/v1/call/args", x=1),
        "sync run_in_threadpool": lambda: run_in_threadpool(sync),
        "sync by path": lambda: call_plugin_api("/api/v1/call/sync"),
    }


async def measure(rounds: int, calls: int, sync_calls: int) -> dict[str, list[float]]:
    container = framex.create_container(
        None, load_builtin_plugins=[], load_plugins=["bench.apps.call_callee", "bench.apps.call_caller"]
    )
    results: dict[str, list[float]] = {name: [] for name in (*ASYNC, *SYNC)}
    try:
        with framex.use_container(container):
            await container.runtime().start()
            calls_of = variants(container)

            async def rounds_as_caller() -> None:
                for i in range(rounds):
                    # Take turns, starting one later each round, so no variant always follows the same one.
                    order = [*ASYNC[i % len(ASYNC) :], *ASYNC[: i % len(ASYNC)]]
                    for name in order:
                        results[name].append(await per_call(calls_of[name], calls))
                    for name in SYNC if i % 2 == 0 else SYNC[::-1]:
                        results[name].append(await per_call(calls_of[name], sync_calls))

            for call in calls_of.values():  # warm-up: plugins started, plans made, threads up
                await call_plugin_api("call_caller.inside", probe=lambda call=call: per_call(call, 1000))
            await call_plugin_api("call_caller.inside", probe=rounds_as_caller)
    finally:
        close_container(container)
    return results


def table(results: dict[str, list[float]]) -> str:
    lines = [
        "| variant | µs/call median (min-max) | over direct, µs |",
        "| --- | ---: | ---: |",
    ]
    for name, values in results.items():
        base = OVER.get(name)
        over = ""
        if base is not None:
            over = f"{statistics.median(v - b for v, b in zip(values, results[base], strict=True)):+.2f}"
        lines.append(f"| {name} | {statistics.median(values):.2f} ({spread(values, '.2f')}) | {over} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=100_000, help="calls per round of each async variant")
    parser.add_argument("--sync-calls", type=int, default=10_000, help="calls per round of each sync variant")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 10,000 calls (2,000 sync)")
    parser.add_argument("--json", type=str, default=str(RESULTS / "plugin_call.json"), help="where results go")
    args = parser.parse_args(argv)
    rounds, calls, sync_calls = (2, 10_000, 2_000) if args.quick else (args.rounds, args.calls, args.sync_calls)
    print(f"framex {framex.__file__}", file=sys.stderr)
    if args.loop == "uvloop":
        import uvloop

        results = uvloop.run(measure(rounds, calls, sync_calls))
    else:
        results = asyncio.run(measure(rounds, calls, sync_calls))
    command = command_line("bench.plugin_call", argv)
    print_results(table(results), notes=[f"{rounds} rounds, loop {args.loop}; command: `{command}`"])
    report = {
        "command": command,
        "loop": args.loop,
        "rounds": rounds,
        "calls": calls,
        "sync_calls": sync_calls,
        "us_per_call": results,
        "machine": machine(),
        "versions": versions("fastapi", "starlette", "anyio", "uvloop"),
        "source": source_state(),
    }
    write_json(Path(args.json), report)
    return 0


if __name__ == "__main__":
    run_cli(main, "plugin_call: interrupted")
