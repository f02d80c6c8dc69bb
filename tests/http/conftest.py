from __future__ import annotations

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
