from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from framex.container import Container, close_container, create_container, use_container

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def framex_config_path() -> Path:
    """Every test container starts from tests/config.yaml unless a test says otherwise."""
    return ROOT / "tests" / "config.yaml"


@pytest.fixture(autouse=True)
def _no_framex_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's FRAMEX__* or FRAMEX_CONFIG variables must not change test results.
    import os

    for name in list(os.environ):
        if name.startswith("FRAMEX"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One private Ray instance for the whole session (2 CPUs, no dashboard, 127.0.0.1)."""
    if importlib.util.find_spec("ray") is None:  # not imported: FrameX configures Ray first
        pytest.skip("Ray is not installed (pip install -e '.[ray]')")
    from framex.adapters.ray import start_ray, stop_ray
    from framex.config import Settings

    start_ray(Settings.model_validate({"adapter": "ray", "ray": {"num_cpus": 2, "log_to_driver": False}}))
    yield
    stop_ray()


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
