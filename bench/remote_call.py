"""The cost of one ``await f.remote()`` on the local backend, against awaiting the function directly.

An async no-op decorated with ``@remote()``: what ``.remote()`` adds per call is the
container lookup, the adapter's dispatch and the await. Rounds of many calls in one
process; the minimum and the median of the rounds are reported (microseconds per call).

Run from the repository root::

    python -m bench.remote_call             # 7 rounds of 200,000 calls
    python -m bench.remote_call --quick     # a smoke run

To compare two checkouts, run this file with the other checkout first on the path:
``PYTHONPATH=/path/to/other python bench/remote_call.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

import framex
from framex import remote


@remote()
async def noop() -> None:
    return None


async def noop_direct() -> None:
    return None


async def per_call(call: object, calls: int) -> float:
    """Microseconds per call of ``call()`` awaited ``calls`` times."""
    start = time.perf_counter()
    for _ in range(calls):
        await call()  # type: ignore[operator]
    return (time.perf_counter() - start) / calls * 1e6


async def measure(rounds: int, calls: int) -> dict[str, list[float]]:
    container = framex.create_container(None, load_builtin_plugins=[], load_plugins=[])
    framex.use_container(container)
    results: dict[str, list[float]] = {"remote": [], "direct": []}
    for _ in range(rounds):
        results["remote"].append(await per_call(noop.remote, calls))
        results["direct"].append(await per_call(noop_direct, calls))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 20,000 calls")
    args = parser.parse_args(argv)
    rounds, calls = (2, 20_000) if args.quick else (args.rounds, args.calls)
    results = asyncio.run(measure(rounds, calls))
    print(f"framex {framex.__file__}", file=sys.stderr)
    for name, values in results.items():
        print(f"{name:<7} µs/call: min {min(values):.3f}  median {statistics.median(values):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
