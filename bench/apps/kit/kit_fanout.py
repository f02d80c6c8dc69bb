"""CPU-bound fan-out on FrameX-kit's local ``@remote``; prints the wall seconds of each run as JSON.

Run with the kit's Python: ``python kit_fanout.py --n 400000 --fanout 32 --runs 7``.
"""

import argparse
import asyncio
import json
import time

from framex.plugin import remote

MODULUS = 1_000_003


def spin(n: int) -> int:
    """The same pure-Python loop as ``bench/apps/cpu_jobs.py``."""
    total = 0
    for i in range(n):
        total = (total + i * i) % MODULUS
    return total


@remote()
def cpu_job(n: int) -> int:
    """``spin(n)`` behind FrameX-kit's ``@remote``."""
    return spin(n)


async def fan_out(n: int, fanout: int, runs: int, warmup: int) -> list[float]:
    """``warmup`` unmeasured fan-outs, then the wall time of ``runs`` more."""
    expected = [spin(n)] * fanout
    walls = []
    for run in range(warmup + runs):
        started = time.perf_counter()
        got = await asyncio.gather(*(cpu_job.remote(n) for _ in range(fanout)))
        if got != expected:
            raise RuntimeError("wrong results")
        if run >= warmup:
            walls.append(time.perf_counter() - started)
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--fanout", type=int, default=32)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps({"wall_s": asyncio.run(fan_out(args.n, args.fanout, args.runs, args.warmup))}))


if __name__ == "__main__":
    main()
