"""Load against a real service: no errors, every response accounted for, bounded memory growth."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from tests.reliability.conftest import RAY_RSS_GROWTH_LIMIT_KIB, RSS_GROWTH_LIMIT_KIB, Service, Sizes, rss_kib
from tests.reliability.load import Outcome, mixed, run_load
from tests.server import Server

ACCESS_LINE = r"INFO framex\.access \[(load-\d+)\]: (\S+) (\S+) (\d{3}) "


def expected_statuses(requests: int) -> dict[int, int]:
    statuses: dict[int, int] = {}
    for i in range(requests):
        status = mixed(i).status
        statuses[status] = statuses.get(status, 0) + 1
    return statuses


def assert_accounted_for(outcome: Outcome) -> None:
    assert outcome.errors == [], f"{len(outcome.errors)} requests got no answer: {outcome.errors[:10]}"
    assert outcome.wrong == [], f"{len(outcome.wrong)} wrong answers: {outcome.wrong[:10]}"
    assert outcome.answered == set(range(outcome.requests))
    assert dict(outcome.statuses) == expected_statuses(outcome.requests)


async def test_local_service_under_load(local_service: Service, sizes: Sizes) -> None:
    n, concurrency = sizes.load_requests, sizes.load_concurrency
    # A warm-up run first: pools, caches and allocator arenas reach their working size.
    warm = await run_load(local_service.url, max(n // 10, 2 * concurrency), concurrency, "warm")
    assert_accounted_for(warm)
    before = rss_kib(local_service.pid)

    outcome = await run_load(local_service.url, n, concurrency, "load")
    after = rss_kib(local_service.pid)
    print(f"\nlocal: {outcome.summary()}; server RSS {before} KiB -> {after} KiB ({after - before:+d} KiB)")

    assert_accounted_for(outcome)
    # The server saw each request once: one access-log line per request id, with its status.
    lines = local_service.log.wait_for(ACCESS_LINE, n)
    logged = {m[1]: int(m[4]) for m in lines}
    assert len(lines) == n and len(logged) == n
    assert logged == {f"load-{i}": mixed(i).status for i in range(n)}
    assert local_service.alive()
    assert after - before <= RSS_GROWTH_LIMIT_KIB, f"server RSS grew {after - before} KiB under load"


def serve_processes(server: Server) -> dict[int, str]:
    """The Ray Serve processes on the request path (HTTP proxy, ingress and plugin replicas)."""
    out = subprocess.run(["ps", "-eo", "sid=,pid=,args="], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        sid, pid, args = line.split(None, 2)
        if int(sid) == server.process.pid and ("ProxyActor" in args or "ServeReplica" in args):
            found[int(pid)] = args
    return found


@pytest.mark.ray
async def test_ray_service_under_load(ray_server_process: Server, sizes: Sizes) -> None:
    n, concurrency = sizes.ray_requests, sizes.ray_concurrency
    warm = await run_load(ray_server_process.url, max(n // 5, 2 * concurrency), concurrency, "warm")
    assert_accounted_for(warm)
    processes = serve_processes(ray_server_process)
    assert any("ProxyActor" in args for args in processes.values()), processes
    before = sum(rss_kib(pid) for pid in processes)

    outcome = await run_load(ray_server_process.url, n, concurrency, "load")
    after = sum(rss_kib(pid) for pid in processes)
    print(f"\nray: {outcome.summary()}; Serve processes RSS {before} KiB -> {after} KiB ({after - before:+d} KiB)")

    assert_accounted_for(outcome)
    async with httpx.AsyncClient(base_url=ray_server_process.url) as client:
        assert (await client.get("/health")).text == "ok"
    assert serve_processes(ray_server_process).keys() == processes.keys()  # no replica died and was replaced
    assert after - before <= RAY_RSS_GROWTH_LIMIT_KIB, f"Serve processes' RSS grew {after - before} KiB under load"
