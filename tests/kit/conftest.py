"""A service assembled the way FrameX-kit's test suites do it: load a plugin folder by
path, then `framex.run(test_mode=True)`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import framex
from framex.container import Container, close_container, create_container, use_container

PLUGINS = Path(__file__).parent / "plugins"
KIT_PLUGINS = {"kit_alias", "kit_invoker", "kit_meta", "kit_stream"}


@pytest.fixture
def kit_container() -> Iterator[Container]:
    container = create_container(Path(__file__).parent / "service.yaml")
    with use_container(container):
        yield container
    close_container(container)


@pytest.fixture
def default_container() -> Iterator[Container]:
    """A fresh container as the process default, as scripts and the kit's tests use it."""
    container = create_container(Path(__file__).parent / "service.yaml")
    keeper = use_container(container)
    yield container
    keeper.__exit__(None, None, None)  # the previous default returns
    close_container(container)


@pytest.fixture
def kit_client(kit_container: Container) -> Iterator[TestClient]:
    framex.load_builtin_plugins("echo")
    loaded = framex.load_plugins(str(PLUGINS))
    assert {plugin.name for plugin in loaded} == KIT_PLUGINS
    app = framex.run(test_mode=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
