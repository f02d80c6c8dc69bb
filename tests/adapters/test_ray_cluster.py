"""Joining a running Ray cluster: a real head node on 127.0.0.1 with token authentication."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server import ROOT, framex_server, free_port, require_ray, session_processes

pytestmark = pytest.mark.ray

RAY = Path(sys.executable).with_name("ray")


def ray_status(address: str) -> subprocess.CompletedProcess[str]:
    """`ray status` as a client of a token-authenticated cluster."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    return subprocess.run(
        [str(RAY), "status", "--address", address], env=env, capture_output=True, text=True, timeout=60
    )


def wait_for_head(address: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = ray_status(address)
        if status.returncode == 0:
            return
        time.sleep(0.5)
    raise TimeoutError(f"the Ray head at {address} did not come up: {status.stderr[-2000:]}")


@pytest.fixture(scope="module")
def head_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`ray start --head --node-ip-address=127.0.0.1`, stopped (with all it started) afterwards."""
    require_ray()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FRAMEX", "RAY_ADDRESS"))}
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    command = [
        str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
        "--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats",
    ]  # fmt: skip
    with (tmp_path_factory.mktemp("head") / "head.log").open("w") as log:
        head = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        address = f"127.0.0.1:{port}"
        try:
            wait_for_head(address)
            yield address
        finally:
            head.send_signal(signal.SIGTERM)
            try:
                head.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(head.pid, signal.SIGKILL)
                head.wait()
    deadline = time.monotonic() + 30
    while session_processes(head.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    leftovers = session_processes(head.pid)
    if leftovers:
        os.killpg(head.pid, signal.SIGKILL)
    assert leftovers == []


def test_framex_joins_a_cluster_with_token_auth(head_node: str) -> None:
    env = {
        "FRAMEX__RAY__ADDRESS": head_node,
        "FRAMEX__RAY__AUTH_MODE": "token",
        # The head runs on this machine, so its workers can import the plugins from here.
        "FRAMEX__RAY__RUNTIME_ENV": f"{{env_vars: {{PYTHONPATH: '{ROOT}'}}}}",
    }
    args = ("--config", str(ROOT / "config" / "ray.yaml"))
    with framex_server(*args, env=env, ready_timeout=240) as server:
        job = httpx.get(f"{server.url}/api/v1/demo/run", params={"x": 21}, timeout=60)
        assert job.json()["data"] == 42  # a @remote task on the cluster
        hello = httpx.get(f"{server.url}/api/v1/greeter/hello", params={"name": "c"}, timeout=60)
        assert hello.json()["data"] == "Hello, c!"  # a call between plugin deployments
        # Ctrl-C in a terminal signals the whole process group.
        os.killpg(server.process.pid, signal.SIGINT)
        assert server.process.wait(120) == 0, server.output()[-3000:]
    status = ray_status(head_node)
    assert status.returncode == 0, status.stderr[-2000:]  # the cluster outlives the service
