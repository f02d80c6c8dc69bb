"""Sizes (CI or ``--soak``), the real service the reliability tests run against, its log and memory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.server import ROOT, OutputDrain, Server, framex_server


@dataclass(frozen=True)
class Sizes:
    """How much each reliability test does; docs/reliability.md lists both sets."""

    load_requests: int
    load_concurrency: int
    ray_requests: int
    ray_concurrency: int
    fault_rounds: int
    config_examples: int
    openapi_examples: int
    body_examples: int


CI = Sizes(
    load_requests=10_000,
    load_concurrency=100,
    ray_requests=200,
    ray_concurrency=20,
    fault_rounds=2,
    config_examples=300,
    openapi_examples=8,
    body_examples=60,
)
SOAK = Sizes(
    load_requests=100_000,
    load_concurrency=100,
    ray_requests=5_000,
    ray_concurrency=50,
    fault_rounds=10,
    config_examples=5_000,
    openapi_examples=100,
    body_examples=1_000,
)

BODY_LIMIT = 1024 * 1024
"""`server.max_body_bytes` of the service under test."""

RSS_GROWTH_LIMIT_KIB = 8 * 1024
"""How much a load run may grow the resident memory of `framex run` (after a warm-up run)."""
RAY_RSS_GROWTH_LIMIT_KIB = 32 * 1024
"""The same for the Ray Serve processes on the request path (proxy and replicas), together."""


@pytest.fixture(scope="session")
def sizes(pytestconfig: pytest.Config) -> Sizes:
    return SOAK if pytestconfig.getoption("--soak") else CI


@dataclass
class Service:
    server: Server
    log: OutputDrain

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pid(self) -> int:
        return self.server.process.pid

    def alive(self) -> bool:
        return self.server.process.poll() is None


def rss_kib(pid: int) -> int:
    """The resident memory of process ``pid``, in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


@pytest.fixture(scope="package")
def local_service() -> Iterator[Service]:
    """`framex run` (local backend) with the test plugins, `faulty`, and a 1 MiB body limit."""
    args = ["--config", str(ROOT / "tests" / "config.yaml")]
    for plugin in ("plugins", "tests.fixture_plugins.kitchen", "tests.reliability.faulty"):
        args += ["--load-plugins", plugin]
    env = {"FRAMEX__SERVER__MAX_BODY_BYTES": str(BODY_LIMIT), "FRAMEX__LOG__EXCLUDE_PATHS": "[/health]"}
    with framex_server(*args, env=env) as server:
        assert server.process.stdout is not None
        yield Service(server, OutputDrain(server.process.stdout))
