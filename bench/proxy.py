"""The proxy plugin's extra hop, and its HTTP client against aiohttp's.

The upstream is the plain FastAPI app of ``bench.apps.fastapi_app``; the proxy is a
FrameX app with only the ``proxy`` plugin, mirroring the upstream's ``/api/v1/*``
routes, served twice: once as shipped (``bench.proxy:app``, FrameX's own HTTP/1.1
client) and once with the same forwarding code sending through an ``aiohttp``
``ClientSession`` instead (``bench.proxy:aiohttp_app``). All three uvicorn processes are
children of one launcher process, so the CPU the benchmark counts as "server" is the
same set of processes in every measurement. A load generator drives
``GET /api/v1/trivial`` on the upstream's port, the proxy's, or the aiohttp proxy's, in
turns; medians of ``--runs`` are reported. Before that, each client alone sends
``--client-requests`` requests to the upstream from this process (same loop, uvloop),
and the CPU time this process spent is divided by them: client CPU µs per request.
Afterwards the upstream's established and TIME_WAIT connections from the proxy are
counted: with a shared pool they stay at the pool's size, whatever the number of requests.

Run from the repository root::

    python -m bench.proxy            # full run, about 3 minutes
    python -m bench.proxy --quick    # smoke run

The tables go to stdout, progress to stderr, everything to ``bench/results/proxy.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

from bench.common import (
    HOST,
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
    http_get,
    log_tail,
    machine,
    measure_point,
    pick_loadgen,
    print_results,
    render_diagnostics,
    render_table,
    stop,
    timestamp,
    uvicorn_command,
    versions,
    wait_for_200,
    write_report,
)

DEFAULT_OUTPUT = RESULTS / "proxy.json"
TARGET = 0.7
"""Through the proxy, at least this share of the requests/s of calling the upstream directly."""
TRIVIAL = "/api/v1/trivial"
FULL = {"duration": 5.0, "warmup": 1.0, "runs": 3, "concurrency": [1, 16, 64]}
QUICK = {"duration": 1.0, "warmup": 0.3, "runs": 1, "concurrency": [16]}
LABELS = [("proxy", "through proxy"), ("direct", "direct")]
APPS = [*LABELS, ("aiohttp", "aiohttp proxy")]
CLIENTS = [("proxy", "through proxy"), ("aiohttp", "aiohttp proxy")]
CLIENT_TARGET = 1.3
"""FrameX's client stays only while the proxy using it serves this many times the
requests/s of the same proxy using aiohttp's, at concurrency :data:`SATURATING`."""
SATURATING = 16
"""Connections from which both servers are kept busy: the throughput target applies there."""
POOL = 100
"""``plugins.proxy.max_connections`` of the proxy under test."""


@functools.cache
def _proxy_app() -> Any:
    import framex

    upstream = os.environ["BENCH_UPSTREAM"]
    container = framex.create_container(
        None,
        load_plugins=[],
        load_builtin_plugins=["proxy"],
        plugins={
            "proxy": {
                "upstreams": {upstream: {"enable": ["/api/v1/*"], "openapi_path": "/openapi.json"}},
                "max_connections": POOL,
            }
        },
        log={"access_log": False},
    )
    framex.use_container(container)
    return framex.create_app(container)


class AiohttpResponse:
    """An aiohttp response with the interface the forwarding code reads."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self.status: int = response.status
        self.headers: list[tuple[bytes, bytes]] = list(response.raw_headers)
        self.content_length: int | None = response.content_length
        self.content_type: str = response.content_type

    async def read(self) -> bytes:
        data: bytes = await self._response.read()
        return data

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.content.iter_any():
            yield chunk

    def release(self) -> None:
        self._response.release()

    async def __aenter__(self) -> AiohttpResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class AiohttpPool:
    """The part of ``Pool`` the forwarding code uses, on an aiohttp ``ClientSession``."""

    def __init__(self, base: str, limit: int, connect_timeout: float, timeout: float) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self._base = base
        connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=4.0)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(sock_connect=connect_timeout, sock_read=timeout),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
        )

    async def request(
        self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes | AsyncIterable[bytes] = b""
    ) -> AiohttpResponse:
        from yarl import URL

        url = URL(self._base + target.decode("ascii"), encoded=True)
        sent = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]
        response = await self._session.request(
            method, url, headers=sent, data=body or None, allow_redirects=False, compress=None
        )
        return AiohttpResponse(response)

    async def close(self) -> None:
        await self._session.close()


@functools.cache
def _aiohttp_proxy_app() -> Any:
    from framex.builtins.proxy.client import Upstream

    pools: dict[tuple[int, str], AiohttpPool] = {}

    def pool(self: Upstream) -> Any:
        key = (id(asyncio.get_running_loop()), self.url)
        found = pools.get(key)
        if found is None:
            settings = self.settings
            found = pools[key] = AiohttpPool(
                self.url, settings.max_connections, settings.connect_timeout, settings.timeout
            )
        return found

    Upstream.pool = pool  # type: ignore[method-assign]  # this process serves the aiohttp variant only
    return _proxy_app()


def __getattr__(name: str) -> Any:
    # uvicorn imports `bench.proxy:app` and `bench.proxy:aiohttp_app`.
    if name == "app":
        return _proxy_app()
    if name == "aiohttp_app":
        return _aiohttp_proxy_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- the clients alone ----------------------------------------------------------------


async def _client_run(kind: str, port: int, requests: int, concurrency: int) -> tuple[float, float]:
    """CPU µs per request of this process, and requests/s, for ``requests`` GETs of the
    trivial route through one client (``framex`` or ``aiohttp``) at ``concurrency``."""
    from framex.builtins.proxy.http1 import Pool

    pool: Any
    if kind == "framex":
        pool = Pool(HOST, port, concurrency, connect_timeout=5.0, timeout=30.0)
    else:
        pool = AiohttpPool(f"http://{HOST}:{port}", concurrency, 5.0, 30.0)
    target = TRIVIAL.encode()

    async def worker(count: int) -> None:
        for _ in range(count):
            response = await pool.request("GET", target, [(b"accept", b"*/*")])
            async with response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{kind} client: GET {TRIVIAL} answered {response.status}")

    try:
        await asyncio.gather(*(worker(max(1, requests // concurrency // 10)) for _ in range(concurrency)))  # warm-up
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await pool.close()
    done = requests // concurrency * concurrency
    return cpu / done * 1e6, done / wall


def measure_clients(port: int, requests: int, runs: int, levels: list[int]) -> dict[str, dict[int, dict[str, Any]]]:
    """Each client alone against the upstream, in turns: median CPU µs/request and req/s."""
    import uvloop

    found: dict[str, dict[int, dict[str, Any]]] = {"framex": {}, "aiohttp": {}}
    for concurrency in levels:
        samples: dict[str, list[tuple[float, float]]] = {"framex": [], "aiohttp": []}
        for run in range(runs):
            for kind in ("framex", "aiohttp") if run % 2 == 0 else ("aiohttp", "framex"):
                us, rps = uvloop.run(_client_run(kind, port, requests, concurrency))
                samples[kind].append((us, rps))
                print(
                    f"  client   c={concurrency:<4} run {run + 1}/{runs} {kind:8} {us:7.1f} µs/request  "
                    f"{rps:9,.0f} req/s",
                    file=sys.stderr,
                    flush=True,
                )
        for kind, values in samples.items():
            found[kind][concurrency] = {
                "median_cpu_us_per_request": statistics.median(v[0] for v in values),
                "median_rps": statistics.median(v[1] for v in values),
                "cpu_us_per_request": [round(v[0], 1) for v in values],
            }
    return found


# -- the pair of servers ------------------------------------------------------------


def _uvicorn(app: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            uvicorn_command(sys.executable, app, ROOT, port), env=env, stdout=out, stderr=subprocess.STDOUT
        )


def serve_pair(upstream_port: int, proxy_port: int, aiohttp_port: int, workdir: Path) -> int:
    """The launcher: start the upstream, then both proxies, and stop them all on SIGTERM."""
    env = base_env(BENCH_UPSTREAM=f"http://{HOST}:{upstream_port}")
    upstream = _uvicorn("bench.apps.fastapi_app:app", upstream_port, env, workdir / "upstream.log")
    wait_for_200(upstream_port, TRIVIAL, upstream, "upstream", 60.0, lambda: log_tail(workdir / "upstream.log"))
    proxy = _uvicorn("bench.proxy:app", proxy_port, env, workdir / "proxy.log")
    aiohttp_proxy = _uvicorn("bench.proxy:aiohttp_app", aiohttp_port, env, workdir / "aiohttp.log")
    signal.signal(signal.SIGTERM, lambda *_: None)  # wake up from the wait below
    try:
        signal.sigwait([signal.SIGTERM, signal.SIGINT])
    finally:
        stop(aiohttp_proxy)
        stop(proxy)
        stop(upstream)
    return 0


def _connections_to(port: int) -> dict[str, int]:
    """Loopback TCP sockets whose remote end is ``port``, by state (clients of that server)."""
    states = {"01": "established", "06": "time_wait"}
    counts = dict.fromkeys(states.values(), 0)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote, state = fields[2], fields[3]
            if int(remote.rsplit(":", 1)[1], 16) == port and state in states:
                counts[states[state]] += 1
    return counts


# -- measuring ------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.proxy", description="A trivial upstream route called directly and through the proxy."
    )
    add_load_options(parser, FULL, DEFAULT_OUTPUT)
    parser.add_argument("--concurrency", type=int, nargs="+", help=f"connections {FULL['concurrency']}")
    parser.add_argument(
        "--client-requests", type=int, default=None, help="requests per client-alone run (full 6000, quick 1000)"
    )
    parser.add_argument(
        "--serve-pair", nargs=4, metavar=("UPSTREAM", "PROXY", "AIOHTTP", "DIR"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.serve_pair:
        return args
    apply_profile(args, QUICK if args.quick else FULL)
    check_load_options(parser, args, args.concurrency)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every measurement, print the tables, write the JSON file."""
    args = parse_args(argv)
    if args.serve_pair:
        upstream_port, proxy_port, aiohttp_port, workdir = args.serve_pair
        return serve_pair(int(upstream_port), int(proxy_port), int(aiohttp_port), Path(workdir))
    client_requests = args.client_requests or (1000 if args.quick else 6000)
    loadgen, measure = pick_loadgen(args.loadgen)
    points = [Point("trivial", TRIVIAL, c) for c in args.concurrency]
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="framex-bench-proxy-") as tmp:
        upstream_port, proxy_port, aiohttp_port = free_port(), free_port(), free_port()
        launcher = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.proxy",
                "--serve-pair",
                *map(str, (upstream_port, proxy_port, aiohttp_port)),
                tmp,
            ],
            cwd=ROOT,
        )
        try:
            wait_for_200(proxy_port, TRIVIAL, launcher, "proxy", 90.0, lambda: log_tail(Path(tmp) / "proxy.log"))
            wait_for_200(aiohttp_port, TRIVIAL, launcher, "proxy", 90.0, lambda: log_tail(Path(tmp) / "aiohttp.log"))
            for port in (upstream_port, proxy_port, aiohttp_port):
                status, body = http_get(port, TRIVIAL)
                if status != 200 or json.loads(body) != {"ok": True}:
                    raise SystemExit(f"GET {TRIVIAL} on port {port} answered {status}: {body[:200]!r}")
            targets = {
                "proxy": Target(proxy_port, launcher.pid, tree=True),
                "direct": Target(upstream_port, launcher.pid, tree=True),
                "aiohttp": Target(aiohttp_port, launcher.pid, tree=True),
            }
            # First, before any client but the proxy has connected to the upstream: its pool.
            proxied = measure(targets["proxy"], TRIVIAL, max(args.concurrency), args.duration, 0.0)
            pool = _connections_to(upstream_port)
            clients = measure_clients(upstream_port, client_requests, args.runs, [1, SATURATING])
            for point in points:
                for run in range(args.runs):
                    order = APPS[run % len(APPS) :] + APPS[: run % len(APPS)]
                    for key, label in order:
                        measure_point(measure, targets[key], point, key, label, f"run {run + 1}/{args.runs}", args)
        finally:
            stop(launcher)

    table, diagnostics = render_table(points, LABELS), render_diagnostics(points, LABELS)
    client_table = render_table(points, CLIENTS)
    client_diagnostics = render_diagnostics(points, CLIENTS)
    notes = []
    for concurrency in (1, SATURATING):
        mine, theirs = clients["framex"][concurrency], clients["aiohttp"][concurrency]
        notes.append(
            f"client alone, c={concurrency}: FrameX client {mine['median_cpu_us_per_request']:.1f} CPU µs/request, "
            f"aiohttp {theirs['median_cpu_us_per_request']:.1f} "
            f"({theirs['median_cpu_us_per_request'] / mine['median_cpu_us_per_request']:.2f}x the CPU); "
            f"{mine['median_rps']:,.0f} against {theirs['median_rps']:,.0f} req/s"
        )
    verdicts = [p.ratio("proxy", "aiohttp") for p in points if p.concurrency == SATURATING]
    if verdicts and verdicts[0] is not None:
        keep = "keep it" if verdicts[0] >= CLIENT_TARGET else "REPLACE it with aiohttp"
        notes.append(
            f"proxy req/s with FrameX's client / with aiohttp's at c={SATURATING}: {verdicts[0]:.3f}x "
            f"(the bar is {CLIENT_TARGET}x: {keep})"
        )
    # Throughput is compared where the servers are saturated; one connection measures the
    # latency of two hops against one instead (about 0.5x by construction).
    ratios = [r for p in points if p.concurrency >= SATURATING and (r := p.ratio("proxy", "direct")) is not None]
    if ratios:
        verdict = "meets" if min(ratios) >= TARGET else "is BELOW"
        notes.append(
            f"lowest throughput ratio through proxy / direct at concurrency >= {SATURATING}: {min(ratios):.3f}x "
            f"{verdict} the {TARGET}x target"
        )
    for point in points:
        if point.concurrency < SATURATING and (r := point.ratio("proxy", "direct")) is not None:
            notes.append(f"concurrency {point.concurrency}: {r:.3f}x (latency-bound: two hops against one)")
    notes.append(
        f"connection pool: after {proxied.ok + proxied.errors:,} requests through the proxy at concurrency "
        f"{max(args.concurrency)} (before any other client), the upstream had {pool['established']} "
        f"established connection(s) from it and {pool['time_wait']} closed ones in TIME_WAIT (pool size {POOL}; "
        "a new connection per request would leave one closed connection per request)"
    )
    print_results(table, diagnostics, client_table, client_diagnostics, notes=notes)
    report = {
        "command": command_line("bench.proxy", argv),
        "started": timestamp(started),
        "seconds": round(time.time() - started, 1),
        "settings": {"duration": args.duration, "warmup": args.warmup, "runs": args.runs, "load_generator": loadgen},
        "machine": machine(),
        "versions": versions("framex", "fastapi", "uvicorn", "aiohttp"),
        "notes": notes,
        "connections": pool,
        "clients": clients,
        "points": [p.to_dict("proxy", "direct") for p in points],
        "client_points": [p.to_dict("proxy", "aiohttp") for p in points],
        "table": table,
        "client_table": client_table,
        "client_diagnostics": client_diagnostics,
    }
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
