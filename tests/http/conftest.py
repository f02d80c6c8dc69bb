from __future__ import annotations

import signal
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.server import ROOT, framex_server, session_processes


@pytest.fixture(scope="session")
def ray_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """`framex run --adapter ray` with the test configuration, shared by the session.

    Stopping it checks the Ray shutdown: exit 0, plugins' `on_stop` ran in their
    replicas, and no process of its session is left.
    """
    marker = tmp_path_factory.mktemp("ray-server") / "on_stop"
    args = ("--config", str(ROOT / "tests" / "config.yaml"), "--adapter", "ray")
    env = {"FRAMEX__RAY__NUM_CPUS": "2", "KITCHEN_STOP_MARKER": str(marker)}
    with framex_server(*args, env=env, ready_timeout=240) as server:
        # The header only labels the client for assertions; the server ignores it.
        with httpx.Client(base_url=server.url, timeout=60, headers={"x-test-backend": "ray"}) as client:
            yield client
        code = server.stop(signal.SIGTERM, timeout=120)
        leftovers = session_processes(server.process.pid)
        assert code == 0, server.output()[-3000:]
        assert leftovers == [], leftovers
        assert marker.read_text() == "stopped"


@pytest.fixture(params=["local", pytest.param("ray", marks=pytest.mark.ray)])
def client(request: pytest.FixtureRequest) -> httpx.Client:
    """An HTTP client of the test service: in-process (local) or a real Ray Serve deployment."""
    if request.param == "ray":
        server: httpx.Client = request.getfixturevalue("ray_server")
        return server
    local: TestClient = request.getfixturevalue("framex_client")
    return local
