"""A real `framex run` on loopback."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from pathlib import Path

import httpx

from tests.server import ROOT, OutputDrain, framex_server


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
                except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
                    # Refused, or accepted in the instant the listener closed and then shut
                    # down unanswered: either way no new request is served.
                    refused = True
            assert refused
            response = await slow
        assert response.status_code == 200
        assert response.json()["data"] == "finished"
        assert server.process.wait(30) == 0
        assert marker.read_text() == "stopped"  # plugins' on_stop ran after the request


PROBE = ("--load-plugins", "tests.fixture_plugins.worker_probe")


def test_the_startup_summary_is_one_block_of_text() -> None:
    with framex_server(*PROBE) as server:
        assert server.process.stdout is not None
        output = OutputDrain(server.process.stdout)
        assert output.wait_for(r"docs: ", 1)
        text = output.text()
        start = text.index("INFO framex.run: FrameX is serving on")
        block = text[start:].splitlines()[:7]
        assert block[0] == f"INFO framex.run: FrameX is serving on {server.url} (Ctrl-C to stop)"
        assert block[1] == "  backend: local, 1 worker process"
        assert "    worker_probe 2.1.0: 2 APIs" in block
        assert f"  docs: {server.url}/docs" in block
        assert server.stop() == 0


def test_the_startup_summary_is_one_json_record_in_json_format() -> None:
    with framex_server(*PROBE, env={"FRAMEX__LOG__FORMAT": "json"}) as server:
        assert server.process.stdout is not None
        output = OutputDrain(server.process.stdout)
        (match,) = output.wait_for(r'"logger": "framex.run"', 1)
        record = json.loads(match.string)
        assert record["level"] == "INFO"
        assert record["message"] == f"FrameX is serving on {server.url} (Ctrl-C to stop)"
        assert (record["backend"], record["workers"], record["address"]) == ("local", 1, server.url)
        assert record["docs"] == f"{server.url}/docs"
        assert {"name": "worker_probe", "version": "2.1.0", "apis": 2} in record["plugins"]
        assert server.stop() == 0


def test_a_request_whose_client_left_is_logged_and_counted_as_499(tmp_path: Path) -> None:
    env = {"FRAMEX__METRICS__ENABLED": "true", "WORKER_PROBE_DIR": str(tmp_path)}
    with framex_server(*PROBE, env=env) as server:
        assert server.process.stdout is not None
        output = OutputDrain(server.process.stdout)
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(b"GET /api/v1/worker_probe/slow?seconds=1 HTTP/1.1\r\nHost: test\r\n\r\n")
            deadline = time.monotonic() + 30
            while not list(tmp_path.glob("started.*")):
                assert time.monotonic() < deadline, "the slow request never started"
                time.sleep(0.05)
        # The client is gone before the answer: 499, as nginx logs it, never a 500.
        (line,) = output.wait_for(r"framex\.access .*GET /api/v1/worker_probe/slow \d+", 1)
        assert " 499 " in line.string, line.string
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'route="/api/v1/worker_probe/slow",status="499"} 1.0' in metrics
        assert 'status="500"' not in metrics
        assert server.stop() == 0


async def test_a_request_cut_off_by_the_shutdown_timeout_is_a_500_not_a_499(tmp_path: Path) -> None:
    env = {"WORKER_PROBE_DIR": str(tmp_path), "FRAMEX__SERVER__SHUTDOWN_TIMEOUT_S": "1"}
    with framex_server(*PROBE, env=env) as server:
        assert server.process.stdout is not None
        output = OutputDrain(server.process.stdout)
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            slow = asyncio.ensure_future(client.get("/api/v1/worker_probe/slow", params={"seconds": 60}))
            deadline = time.monotonic() + 30
            while not list(tmp_path.glob("started.*")):
                assert time.monotonic() < deadline, "the slow request never started"
                await asyncio.sleep(0.05)
            server.process.send_signal(signal.SIGTERM)
            response = await slow
        assert response.status_code == 500  # uvicorn's answer to a request it cancelled
        assert await asyncio.to_thread(server.process.wait, 30) == 0
        # The server gave up on it: logged as what the client got, never as the client's doing (499).
        (line,) = output.wait_for(r"framex\.access .*GET /api/v1/worker_probe/slow \d+", 1)
        assert " 500 " in line.string, line.string
