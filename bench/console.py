"""What the console costs when it works: one latency sample (every ``console.interval_s``) and
one JSON document (per open page and refresh), with a full history window.

Serves the example service (``config/local.yaml``, metrics on) in-process and fills the
history with busy intervals: in each, one request to each of five APIs (so that they and
their ``@remote`` functions have a point in every interval). Then times
:meth:`Console.sample` and :meth:`Console.state` (the median of ``--repeat`` calls).

Run from the repository root::

    python -m bench.console
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from fastapi.testclient import TestClient

import framex
from framex.container import close_container

PATHS = (
    "/api/v1/demo/run?x=1",
    "/api/v1/echo?message=a",
    "/api/v1/greeter/hello?name=Ada",
    "/api/v1/demo/double_21",
    "/api/v1/demo/scale",
)


def measure(repeat: int) -> dict[str, Any]:
    """Fill the history with busy intervals, time ``repeat`` samples and documents."""
    container = framex.create_container("config/local.yaml", metrics={"enabled": True})
    console = container.console()
    try:
        with TestClient(framex.create_app(container)) as client:
            for _ in range(console.history.size + 1):  # a full window, as after `history_minutes` of serving
                for path in PATHS:
                    client.get(path)
                console.sample()
            samples = []
            for _ in range(repeat):
                start = time.perf_counter()
                console.sample()
                samples.append(time.perf_counter() - start)
            documents, state = asyncio.run(_documents(console, repeat))
    finally:
        close_container(container)
    series = sum(len(p["apis"]) + len(p["remote_functions"]) for p in state["plugins"]) + len(state["routes"])
    return {
        "series": series,
        "intervals": len(console.history),
        "sample_ms": statistics.median(samples) * 1000,
        "state_ms": statistics.median(documents) * 1000,
        "state_bytes": len(json.dumps(state)),
    }


async def _documents(console: Any, repeat: int) -> tuple[list[float], dict[str, Any]]:
    times, state = [], {}
    for _ in range(repeat):
        start = time.perf_counter()
        state = await console.state()
        times.append(time.perf_counter() - start)
    return times, state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=50, help="timed calls of each (50)")
    args = parser.parse_args(argv)
    result = measure(args.repeat)
    print("| rows on the page | intervals kept | one sample | one JSON document | its size |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {result['series']} | {result['intervals']} | {result['sample_ms']:.2f} ms | "
        f"{result['state_ms']:.1f} ms | {result['state_bytes'] / 1024:.0f} KiB |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
