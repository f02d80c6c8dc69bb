from __future__ import annotations

import gc
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient


@pytest.fixture(params=["local", pytest.param("ray", marks=pytest.mark.ray)])
def client(request: pytest.FixtureRequest) -> httpx.Client:
    """An HTTP client of the test service: in-process (local) or a real Ray Serve deployment."""
    if request.param == "ray":
        server: httpx.Client = request.getfixturevalue("ray_server")
        return server
    local: TestClient = request.getfixturevalue("framex_client")
    return local


@pytest.fixture
def frozen_gc() -> Iterator[None]:
    """Leave the objects of earlier tests out of garbage collection, as `framex run` does after start-up.

    A full collection over them holds the GIL for 100-250 ms in this suite: the event loop
    stops meanwhile, whatever request it is in the middle of, and the loop watchdog would
    rightly see a blocked loop there.
    """
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()
