"""A real `framex run` on loopback."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx

from tests.server import ROOT, framex_server


def test_framex_run_serves_the_configured_plugins_and_stops_on_sigterm() -> None:
    with framex_server("--config", str(ROOT / "config" / "local.yaml")) as server:
        response = httpx.get(f"{server.url}/api/v1/demo/run", params={"x": 21})
        assert response.json()["data"] == 42
        hello = httpx.get(f"{server.url}/api/v1/greeter/hello", params={"name": "x"})
        assert hello.json()["data"] == "Hello, x!"
        assert server.stop(signal.SIGTERM) == 0


def test_ctrl_c_stops_the_server() -> None:
    with framex_server("--load-plugins", "plugins.demo") as server:
        assert httpx.get(f"{server.url}/ping").text == "pong"
        assert server.stop(signal.SIGINT) == 0


async def test_other_routes_answer_while_the_pool_is_saturated() -> None:
    # A pool of 2 threads; 4 requests whose jobs block until released. The health
    # route and an async route must still answer while all of them are stuck.
    args = ("--load-plugins", "tests.fixture_plugins.blocking", "--load-builtin-plugins", "echo")
    with framex_server(*args, env={"FRAMEX__LOCAL__MAX_WORKERS": "2"}) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            blocked = [asyncio.ensure_future(client.get("/api/v1/blocking/wait", params={"tag": i})) for i in range(4)]
            waiting = await client.get("/api/v1/blocking/waiting")
            deadline = asyncio.get_running_loop().time() + 20
            while waiting.json()["data"] < 2:
                assert asyncio.get_running_loop().time() < deadline, "jobs never started"
                waiting = await client.get("/api/v1/blocking/waiting")
            assert (await client.get("/health")).text == "ok"
            assert (await client.get("/api/v1/echo", params={"message": "still here"})).json()["data"] == "still here"
            assert not any(task.done() for task in blocked)
            assert (await client.post("/api/v1/blocking/release")).status_code == 200
            results = await asyncio.gather(*blocked)
        assert sorted(r.json()["data"] for r in results) == ["0", "1", "2", "3"]
        assert server.stop() == 0


async def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    marker = tmp_path / "on_stop"
    args = ("--load-plugins", "tests.fixture_plugins.slow_work")
    env = {"SLOW_WORK_STOP_MARKER": str(marker), "FRAMEX__SERVER__SHUTDOWN_TIMEOUT_S": "20"}
    with framex_server(*args, env=env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            slow = asyncio.ensure_future(client.get("/api/v1/slow_work/run", params={"seconds": 2}))
            deadline = asyncio.get_running_loop().time() + 20
            while (await client.get("/api/v1/slow_work/started")).json()["data"] < 1:
                assert asyncio.get_running_loop().time() < deadline, "the slow request never started"
            server.process.send_signal(signal.SIGTERM)
            # New connections are refused while the slow request is still being served.
            refused = False
            while not refused and not slow.done():
                assert asyncio.get_running_loop().time() < deadline + 20, "the server kept accepting"
                try:
                    async with httpx.AsyncClient(base_url=server.url, timeout=5) as fresh:
                        await fresh.get("/ping")
                except httpx.ConnectError:
                    refused = True
            assert refused
            response = await slow
        assert response.status_code == 200
        assert response.json()["data"] == "finished"
        assert server.process.wait(30) == 0
        assert marker.read_text() == "stopped"  # plugins' on_stop ran after the request
