"""CPU time per request of ``bench/apps/framex_app.py``, driven through ASGI in-process.

``python bench/apps/asgi_cpu.py PATH COUNT`` (with the ``framex`` to measure first on
``PYTHONPATH``) prints the process CPU microseconds per request, every thread of the
process counted (the thread pool's, the span exporter's). No network and no load
generator: what other processes do changes the result less than a measurement over HTTP.
"""

import asyncio
import sys
import time
from typing import Any

from bench.apps.framex_app import app


async def one(path: str, query: str) -> None:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 50000),
    }
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    if status != [200]:
        raise RuntimeError(f"GET {path}?{query} answered {status}")


async def main(target: str, count: int) -> float:
    path, _, query = target.partition("?")
    for _ in range(min(count, 500)):  # warm-up: caches, the pool's threads
        await one(path, query)
    start = time.process_time()
    for _ in range(count):
        await one(path, query)
    return (time.process_time() - start) / count * 1e6


if __name__ == "__main__":
    print(f"{asyncio.run(main(sys.argv[1], int(sys.argv[2]))):.2f}")
