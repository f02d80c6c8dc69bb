"""What the console says about the backend: the local pools, and on Ray the cluster's nodes."""

from __future__ import annotations

import sys
import threading

import httpx
import pytest

from framex.adapters.local import LocalAdapter
from framex.console.backend import describe_backend, ray_cluster
from framex.container import Container
from framex.testing import RecordingAdapter


async def test_pools_not_started_are_none_and_started_ones_are_read_from_the_pools() -> None:
    adapter = LocalAdapter(max_workers=3, max_processes=2)
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    try:
        info = await describe_backend(adapter)
        assert info["pools"] == {"threads": None, "processes": None}
        assert info["pool_sizes"] == {"threads": 3, "processes": 2}
        held = adapter.pool.run(hold)
        assert started.wait(10)
        threads = (await describe_backend(adapter))["pools"]["threads"]
        assert threads == {"size": 3, "started": 1, "busy": 1, "queued": 0}
        release.set()
        await held
        threads = (await describe_backend(adapter))["pools"]["threads"]
        assert threads == {"size": 3, "started": 1, "busy": 0, "queued": 0}
    finally:
        adapter.close()


async def test_another_backend_is_named_only() -> None:
    assert await describe_backend(RecordingAdapter()) == {"name": "recording"}


def test_ray_not_connected_is_said_without_importing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    assert ray_cluster() == {"connected": False, "nodes": [], "resources": {"total": {}, "available": {}}}
    assert "ray" not in sys.modules


@pytest.mark.ray
async def test_on_ray_the_console_lists_the_nodes_and_their_resources(ray_container: Container) -> None:
    state = await ray_container.console().state()
    cluster = state["backend"]["cluster"]
    assert state["backend"]["name"] == "ray" and cluster["connected"] is True
    assert len(cluster["nodes"]) == 1
    node = cluster["nodes"][0]
    assert node["alive"] is True and node["address"] == "127.0.0.1"
    assert node["resources"]["CPU"] == 2.0 and not any(name.startswith("node:") for name in node["resources"])
    assert cluster["resources"]["total"]["CPU"] == 2.0
    assert 0 <= cluster["resources"]["available"]["CPU"] <= 2.0


@pytest.mark.ray
def test_served_on_ray_serve_the_console_shows_the_cluster(ray_server: httpx.Client) -> None:
    response = ray_server.get("/console/api/state")
    assert response.status_code == 200, response.text
    state = response.json()["data"]
    assert state["service"]["adapter"] == "ray" and state["backend"]["name"] == "ray"
    cluster = state["backend"]["cluster"]
    assert cluster["connected"] is True and cluster["resources"]["total"]["CPU"] == 2.0
    assert any(node["alive"] for node in cluster["nodes"])
    assert "kitchen" in [p["name"] for p in state["plugins"]]
    assert ray_server.get("/console").status_code == 200
