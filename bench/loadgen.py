"""A small HTTP/1.1 load generator on asyncio streams.

Each of ``--concurrency`` workers keeps one keep-alive connection and sends the same
pre-encoded ``GET`` request as soon as the previous response is read (a closed loop).
Requests that complete during the warm-up are discarded; the ones that complete inside
the measurement window give the throughput and the latency percentiles. Responses are
read by their ``Content-Length``; a status other than 200 counts as an error.

Run it in its own process so it never shares the server's event loop::

    python -m bench.loadgen --port 8000 --path /api/v1/trivial --concurrency 16

It prints one JSON object (a :class:`LoadResult`) on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HEADER_END = b"\r\n\r\n"
CONTENT_LENGTH = b"\r\ncontent-length:"
CONNECTION_CLOSE = b"\r\nconnection: close"
GRACE_SECONDS = 10.0
"""How long requests still in flight at the end of the window may take to finish."""


class ProtocolError(Exception):
    """The server sent something this generator does not parse."""


@dataclass
class LoadResult:
    """One measurement: what completed inside the window and how long it took."""

    generator: str
    concurrency: int
    seconds: float
    ok: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    client_cpu: float | None = None
    """Share of one core the load generator used during the window."""
    server_cpu: float | None = None
    """Share of one core the server process used during the window."""
    other_cpu: float | None = None
    """Cores used during the window by everything but the server and the load generator."""
    steal: float | None = None
    """Share of the machine's CPU time the hypervisor gave to other machines in the window."""

    @property
    def rps(self) -> float:
        """Successful (200) responses per second."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    @property
    def server_us_per_request(self) -> float | None:
        """Server CPU time per successful request, in microseconds: the framework's cost."""
        if self.server_cpu is None or not self.ok:
            return None
        return self.server_cpu * 1e6 / self.rps

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rps": self.rps, "server_us_per_request": self.server_us_per_request}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadResult:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of an already sorted list; 0.0 when empty."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads), or None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    # Fields 14 and 15 of proc(5) (utime, stime); `fields` starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live descendant of it (from ``/proc``); just ``[pid]`` off Linux."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def tree_cpu_seconds(pid: int) -> dict[int, float] | None:
    """CPU seconds of ``pid`` and of each live descendant (a Ray server: raylet, GCS, workers, ...)."""
    if process_cpu_seconds(pid) is None:
        return None
    return {p: s for p in process_tree(pid) if (s := process_cpu_seconds(p)) is not None}


@dataclass(frozen=True)
class Usage:
    """CPU seconds at one instant: the whole machine (from ``/proc/stat``), the server, this process tree."""

    wall: float
    busy: float | None
    steal: float | None
    total: float | None
    server: float | None
    client: float
    server_pids: dict[int, float] | None = None
    """With a process tree: the CPU seconds of each of its processes."""


def machine_cpu_seconds() -> tuple[float, float, float] | None:
    """(busy, steal, total) CPU seconds of the whole machine since boot, or None off Linux."""
    try:
        with open("/proc/stat") as stat:
            user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in stat.readline().split()[1:9])
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    busy = user + nice + system + irq + softirq
    return busy / tick, steal / tick, (busy + idle + iowait + steal) / tick


def usage(server_pid: int | None, client: Callable[[], float], tree: bool = False) -> Usage:
    """Sample every CPU counter the report needs; ``client`` gives the load generator's seconds.

    With ``tree`` the server's CPU includes its descendants'; see :func:`cpu_shares`.
    """
    machine = machine_cpu_seconds()
    server, pids = None, None
    if server_pid and tree:
        pids = tree_cpu_seconds(server_pid)
        server = sum(pids.values()) if pids is not None else None
    elif server_pid:
        server = process_cpu_seconds(server_pid)
    return Usage(
        wall=time.perf_counter(),
        busy=machine[0] if machine else None,
        steal=machine[1] if machine else None,
        total=machine[2] if machine else None,
        server=server,
        client=client(),
        server_pids=pids,
    )


def cpu_shares(before: Usage, after: Usage) -> dict[str, float | None]:
    """``client_cpu``, ``server_cpu``, ``other_cpu`` (in cores) and ``steal`` (a share) between two samples.

    A server process tree's CPU is summed per process: one started in between counts
    whole, one that exited counts nothing (its last seconds are unknown).
    """
    elapsed = after.wall - before.wall

    def delta(name: str) -> float | None:
        a, b = getattr(before, name), getattr(after, name)
        return None if a is None or b is None else b - a

    client, server, busy, steal, total = (delta(n) for n in ("client", "server", "busy", "steal", "total"))
    if before.server_pids is not None and after.server_pids is not None:
        server = sum(t - before.server_pids.get(p, 0.0) for p, t in after.server_pids.items())
    other = None if busy is None or server is None else max(0.0, busy - server - (client or 0.0)) / elapsed
    return {
        "client_cpu": None if client is None else client / elapsed,
        "server_cpu": None if server is None else server / elapsed,
        "other_cpu": other,
        "steal": None if steal is None or not total else steal / total,
    }


@dataclass
class _Window:
    start: float
    end: float
    ok: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def inside(self, t: float) -> bool:
        return self.start <= t < self.end


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; return its status and whether the connection stays open."""
    head = await reader.readuntil(HEADER_END)
    if not head.startswith(b"HTTP/1."):
        raise ProtocolError(f"not an HTTP response: {head[:40]!r}")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(CONTENT_LENGTH)
    if at < 0:
        raise ProtocolError("response without Content-Length")
    at += len(CONTENT_LENGTH)
    length = int(lower[at : lower.index(b"\r\n", at)])
    if length:
        await reader.readexactly(length)
    return status, CONNECTION_CLOSE not in lower


async def _worker(host: str, port: int, request: bytes, window: _Window) -> None:
    """Send ``request`` back to back on one connection until the window ends."""
    perf_counter = time.perf_counter
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        while perf_counter() < window.end:
            try:
                if reader is None or writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                start = perf_counter()
                writer.write(request)
                status, keep_alive = await _read_response(reader)
                end = perf_counter()
            except (OSError, EOFError, ValueError, asyncio.LimitOverrunError, ProtocolError):
                # A reset, a short read or an unparsable response: the connection is unusable.
                if window.inside(perf_counter()):
                    window.errors += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)
                continue
            if window.inside(end):
                if status == 200:
                    window.ok += 1
                    window.latencies.append(end - start)
                else:
                    window.errors += 1
            if not keep_alive:
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


async def run_load(
    host: str,
    port: int,
    path: str,
    concurrency: int,
    duration: float,
    warmup: float,
    server_pid: int | None = None,
    generator: str = "python",
    server_tree: bool = False,
) -> LoadResult:
    """Drive ``GET path`` with ``concurrency`` connections; measure ``duration`` s after ``warmup`` s."""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: bench-loadgen\r\n\r\n".encode()
    now = time.perf_counter()
    window = _Window(start=now + warmup, end=now + warmup + duration)
    tasks = [asyncio.create_task(_worker(host, port, request, window)) for _ in range(concurrency)]
    try:
        await asyncio.sleep(max(0.0, window.start - time.perf_counter()))
        before = usage(server_pid, time.process_time, server_tree)
        await asyncio.sleep(max(0.0, window.end - time.perf_counter()))
        after = usage(server_pid, time.process_time, server_tree)
        _, pending = await asyncio.wait(tasks, timeout=GRACE_SECONDS)
        for task in pending:
            task.cancel()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            raise failure
    ordered = sorted(window.latencies)
    return LoadResult(
        generator=generator,
        concurrency=concurrency,
        seconds=duration,
        ok=window.ok,
        errors=window.errors,
        p50_ms=percentile(ordered, 50) * 1000,
        p99_ms=percentile(ordered, 99) * 1000,
        max_ms=(ordered[-1] if ordered else 0.0) * 1000,
        **cpu_shares(before, after),
    )


def main(argv: list[str] | None = None) -> None:
    """Command line: run one measurement and print it as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/")
    parser.add_argument("--concurrency", type=int, default=16, help="connections, one request in flight each")
    parser.add_argument("--duration", type=float, default=5.0, help="measurement window, seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before the window")
    parser.add_argument("--server-pid", type=int, help="also report this process's CPU use in the window")
    parser.add_argument(
        "--server-tree", action="store_true", help="count the server's descendants too (Ray's processes)"
    )
    parser.add_argument("--no-uvloop", action="store_true", help="use asyncio's own event loop even if uvloop exists")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("need --concurrency >= 1, --duration > 0 and --warmup >= 0")

    generator = "python-asyncio"
    loop_factory = None
    if not args.no_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            loop_factory = uvloop.new_event_loop
            generator = "python-uvloop"
    gc.disable()  # no collector pauses inside the window; the run allocates little
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(
            run_load(
                args.host,
                args.port,
                args.path,
                args.concurrency,
                args.duration,
                args.warmup,
                args.server_pid,
                generator,
                args.server_tree,
            )
        )
    print(json.dumps(result.to_dict()))


if __name__ == "__main__":
    main()
