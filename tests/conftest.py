from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from framex.container import Container, close_container, create_container, use_container
from tests.server import OutputDrain, Server, framex_server, require_ray, session_processes

# Ray picks its address when it is first imported: whatever imports it first in this
# session, the session's Ray (and the servers started from here) stay on 127.0.0.1.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="tests/reliability at soak sizes (docs/reliability.md)")


@pytest.fixture
def framex_config_path() -> Path:
    """Every test container starts from tests/config.yaml unless a test says otherwise."""
    return ROOT / "tests" / "config.yaml"


@pytest.fixture(autouse=True)
def _no_framex_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's FRAMEX__* or FRAMEX_CONFIG variables must not change test results.
    for name in list(os.environ):
        if name.startswith("FRAMEX"):
            monkeypatch.delenv(name)


@pytest.fixture
def isolated_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process default container of the test's own (none until it sets or builds one)."""
    import framex.context

    monkeypatch.setattr(framex.context, "_base", None)
    monkeypatch.setattr(framex.context, "_sets", [])
    monkeypatch.setattr(framex.context, "_default", None)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One private Ray instance for the whole session (2 CPUs, no dashboard, 127.0.0.1)."""
    require_ray()
    from framex.adapters.ray import start_ray, stop_ray
    from framex.config import Settings

    start_ray(Settings.model_validate({"adapter": "ray", "ray": {"num_cpus": 2, "log_to_driver": False}}))
    yield
    stop_ray()


@pytest.fixture(scope="session")
def ray_server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`framex run --adapter ray` with the test configuration, shared by the session.

    Stopping it checks the Ray shutdown: exit 0, plugins' `on_stop` ran in their
    replicas, and no process of its session is left.
    """
    require_ray()
    marker = tmp_path_factory.mktemp("ray-server") / "on_stop"
    args = ("--config", str(ROOT / "tests" / "config.yaml"), "--adapter", "ray")
    env = {"FRAMEX__RAY__NUM_CPUS": "2", "KITCHEN_STOP_MARKER": str(marker)}
    with framex_server(*args, env=env, ready_timeout=240) as server:
        assert server.process.stdout is not None
        output = OutputDrain(server.process.stdout)  # Ray forwards the replicas' logs: a full pipe would block it
        server.drain = output
        yield server
        code = server.stop(signal.SIGTERM, timeout=120)
        leftovers = session_processes(server.process.pid)
        assert code == 0, output.text()[-3000:]
        assert leftovers == [], leftovers
        assert marker.read_text() == "stopped"


@pytest.fixture(scope="session")
def ray_server(ray_server_process: Server) -> Iterator[httpx.Client]:
    """An HTTP client of `ray_server_process`."""
    # The header only labels the client for assertions; the server ignores it.
    with httpx.Client(base_url=ray_server_process.url, timeout=60, headers={"x-test-backend": "ray"}) as client:
        yield client


def _active_container(adapter: str) -> Iterator[Container]:
    container = create_container(None, adapter=adapter, load_plugins=[], load_builtin_plugins=[])
    try:
        with use_container(container):
            yield container
    finally:
        close_container(container)


@pytest.fixture
def ray_container(ray_cluster: None) -> Iterator[Container]:
    """An active container with `adapter: ray`, on the session's Ray instance."""
    yield from _active_container("ray")


@pytest.fixture(params=["local", pytest.param("ray", marks=pytest.mark.ray)])
def backend(request: pytest.FixtureRequest) -> Iterator[Container]:
    """The same test against a local container and a Ray container."""
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    yield from _active_container(request.param)
