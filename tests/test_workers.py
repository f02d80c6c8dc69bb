"""`framex run --workers N`: real worker processes on loopback, under their supervisor."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server import ROOT, OutputDrain, Server, framex_server, session_processes

PROBE = ("--load-plugins", "tests.fixture_plugins.worker_probe")
DEADLINE = 60.0
"""Seconds a test waits for something that should happen far sooner (a loaded machine)."""


def answering_pid(server: Server) -> int:
    """The pid of the worker that answers a request on a new connection."""
    response = httpx.get(f"{server.url}/api/v1/worker_probe/pid", timeout=30)
    assert response.status_code == 200, response.text
    pid: int = response.json()["data"]
    return pid


def poll(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.05)


def pids_answering(server: Server, count: int) -> set[int]:
    """Ask on new connections until ``count`` different workers have answered."""
    seen: set[int] = set()

    def enough() -> bool:
        seen.add(answering_pid(server))
        return len(seen) >= count

    poll(enough, f"answers from {count} worker processes")
    return seen


def summary_pids(output: OutputDrain) -> set[int]:
    matches = output.wait_for(r"backend: local, (\d+) worker processes \(pid ([\d, ]+)\)", 1)
    assert matches, output.text()[-3000:]
    return {int(pid) for pid in matches[-1].group(2).split(", ")}


def test_two_workers_answer_from_two_pids_named_in_the_summary() -> None:
    with framex_server("--workers", "2", *PROBE) as server:
        assert server.process.stdout is not None
        output = OutputDrain(server.process.stdout)
        pids = pids_answering(server, 2)
        assert server.process.pid not in pids  # the supervisor serves nothing itself
        assert summary_pids(output) == pids
        assert "worker_probe 2.1.0: 2 APIs" in output.text()
        assert server.stop() == 0


def test_a_killed_worker_is_replaced_and_the_service_keeps_answering() -> None:
    with framex_server("--workers", "2", *PROBE) as server:
        assert server.process.stdout is not None
        output = OutputDrain(server.process.stdout)
        first = pids_answering(server, 2)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        seen: set[int] = set()

        def replaced() -> bool:
            seen.add(answering_pid(server))  # every request answers meanwhile
            return bool(seen - first)

        poll(replaced, "an answer from a new worker")
        assert victim not in seen
        assert output.wait_for(rf"Worker process {victim} was killed by SIGKILL; starting a new one", 1)
        (new,) = seen - first
        assert output.wait_for(rf"Worker process {new} serves\.", 1)
        assert server.stop() == 0
        assert session_processes(server.process.pid) == []


def metric_total(text: str, route: str) -> float:
    pattern = re.compile(
        rf'^framex_http_requests_total\{{method="GET",route="{re.escape(route)}",status="(\d+)"\}} (\S+)$'
    )
    return sum(float(m.group(2)) for line in text.splitlines() if (m := pattern.match(line)))


def test_metrics_count_the_requests_of_every_worker(tmp_path: Path) -> None:
    env = {"FRAMEX__METRICS__ENABLED": "true", "TMPDIR": str(tmp_path)}
    with framex_server("--workers", "2", *PROBE, env=env) as server:
        sent = 0
        pids: set[int] = set()
        while len(pids) < 2 or sent < 40:  # on new connections: both workers serve some
            assert sent < 2000, "one worker took every connection"
            pids.add(answering_pid(server))
            sent += 1
        scrapes: list[str] = []

        def counted() -> bool:
            scrapes.append(httpx.get(f"{server.url}/metrics", timeout=30).text)
            total = metric_total(scrapes[-1], "/api/v1/worker_probe/pid")
            assert total <= sent, scrapes[-1]
            return total == sent

        poll(counted, f"a scrape counting all {sent} requests")
        # The series are the service's: the scrape reads every worker's numbers, once.
        assert scrapes[-1].count("# TYPE framex_http_requests_total counter") == 1
        (shared,) = tmp_path.glob("framex-metrics-*")  # the workers' files, made by FrameX
        assert {p.name.split("_")[0] for p in shared.glob("*.db")} >= {"counter", "histogram"}
        assert server.stop() == 0
    assert list(tmp_path.iterdir()) == []  # and removed when the service stops


async def test_sigterm_drains_every_worker_and_leaves_no_process(tmp_path: Path) -> None:
    env = {"WORKER_PROBE_DIR": str(tmp_path), "FRAMEX__SERVER__SHUTDOWN_TIMEOUT_S": "30"}
    with framex_server("--workers", "2", *PROBE, env=env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            slow: list[asyncio.Future[httpx.Response]] = []

            def started() -> list[str]:
                return [path.name.split(".")[1] for path in tmp_path.glob("started.*")]

            # Slow requests, two at a time on connections of their own, until both workers
            # serve one; every request sent has started before the signal.
            deadline = time.monotonic() + DEADLINE
            while len(set(started())) < 2:
                assert len(slow) < 40, "one worker took every connection"
                for _ in range(2):
                    slow.append(asyncio.ensure_future(client.get("/api/v1/worker_probe/slow", params={"seconds": 3})))
                while len(started()) < len(slow):
                    assert time.monotonic() < deadline, "the slow requests never started"
                    await asyncio.sleep(0.05)
            server.process.send_signal(signal.SIGTERM)
            responses = await asyncio.gather(*slow)
        assert [r.status_code for r in responses] == [200] * len(slow)
        assert {str(r.json()["data"]) for r in responses} == set(started())
        code = await asyncio.to_thread(server.process.wait, 60)
        assert code == 0
        assert session_processes(server.process.pid) == []
        assert {path.name for path in tmp_path.glob("stopped.*")} == {f"stopped.{pid}" for pid in started()}


def test_workers_stop_when_their_supervisor_is_killed() -> None:
    with framex_server("--workers", "2", *PROBE) as server:
        pids = pids_answering(server, 2)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(30)

        def gone() -> bool:
            alive = session_processes(server.process.pid)
            return not any(line.split()[0] in {str(p) for p in pids} for line in alive)

        poll(gone, "the workers' exit")


def framex(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEX")}
    return subprocess.run(
        [sys.executable, "-m", "framex.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_worker_that_cannot_start_stops_the_service_with_its_error() -> None:
    result = framex("run", "--port", "0", "--workers", "2", "--load-plugins", "tests.fixture_plugins.failing_start")
    assert result.returncode == 1
    assert result.stderr.rstrip().endswith(
        "framex: error: Plugin `failing_start`: `FailingPlugin.on_start()` failed: "
        "ConnectionError: cannot reach the model store."
    )
    assert "Traceback" not in result.stderr.splitlines()[-1]


def test_a_plugin_that_does_not_import_fails_like_one_process() -> None:
    result = framex("run", "--port", "0", "--workers", "2", "--load-plugins", "tests.fixture_plugins.broken_import")
    assert result.returncode == 2
    assert "Plugin `tests.fixture_plugins.broken_import` failed to import" in result.stderr.splitlines()[-1]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--workers", "2", "--adapter", "ray"), r"`server.workers: 2` \(`--workers`\) is for the local backend"),
        (("--workers", "0"), r"`server.workers`: Input should be greater than or equal to 1"),
    ],
)
def test_workers_where_they_cannot_work_are_refused(args: tuple[str, ...], expected: str) -> None:
    result = framex("run", "--port", "0", "--load-plugins", "plugins.demo", *args)
    assert result.returncode == 2
    assert re.search(expected, result.stderr), result.stderr


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = framex("run", "--port", str(port), "--workers", "2", "--load-plugins", "plugins.demo")
    assert result.returncode == 2
    assert result.stderr.startswith(f"framex: error: The server could not start on 127.0.0.1:{port}: ")
    assert "pick another with `--port`" in result.stderr


def test_a_signal_at_any_point_of_the_supervisors_wait_neither_blocks_nor_is_lost() -> None:
    # A Python signal handler runs in the main thread between two lines of whatever it
    # interrupted: here it is run between every two lines of the supervisor's wait (the
    # trace function), which deadlocks a handler that takes a lock the wait holds.
    from framex.config import Settings
    from framex.workers import Supervisor

    with socket.socket() as sock:
        supervisor = Supervisor(Settings(), sock, None)
        lines = 0

        def as_if_signalled(frame: Any, event: str, arg: Any) -> Any:
            nonlocal lines
            if event == "line":
                lines += 1
                supervisor._on_signal(signal.SIGTERM, None)
            return as_if_signalled

        returned = threading.Event()

        def wait() -> None:
            sys.settrace(as_if_signalled)
            try:
                supervisor._pause()
            finally:
                sys.settrace(None)
            returned.set()

        threading.Thread(target=wait, daemon=True).start()
        assert returned.wait(30), "the supervisor's wait blocked in its signal handler"
        assert lines > 0 and len(supervisor._signals) == lines
        os.close(supervisor._wake_read)
        os.close(supervisor._wake_write)
