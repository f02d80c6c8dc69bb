"""Run a real `framex run` process on loopback for tests that are about serving."""

from __future__ import annotations

import importlib.util
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def require_ray() -> None:
    """Skip the test when the `ray` extra is not installed."""
    if importlib.util.find_spec("ray") is None:  # not imported: FrameX configures Ray first
        pytest.skip("Ray is not installed (pip install -e '.[ray]')")


def free_port() -> int:
    """A free port below the kernel's ephemeral range and above Ray's worker ports.

    Ray opens many sockets on ephemeral ports; a test server's port picked there could be
    taken before the server binds it.
    """
    for _ in range(200):
        port = random.randrange(20000, 30000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 30000 on 127.0.0.1")


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    drain: OutputDrain | None = None
    """What reads the server's output, when a fixture keeps it."""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the server and wait for it to exit; return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def output(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.read()


def wait_ready(url: str, process: subprocess.Popen[str], timeout: float = 60) -> None:
    """Poll `/health` until it answers, the process dies, or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"server exited with {process.returncode} before it was ready:\n{output}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    output = process.communicate()[0] if process.stdout else ""
    raise TimeoutError(f"server at {url} not ready after {timeout}s; its output:\n{output[-5000:]}")


def session_processes(sid: int) -> list[str]:
    """Processes still alive in session ``sid`` (a server started in its own session)."""
    out = subprocess.run(["ps", "-eo", "sid=,pid=,stat=,args="], capture_output=True, text=True).stdout
    alive = []
    for line in out.splitlines():
        fields = line.split(None, 3)
        if len(fields) == 4 and fields[0] == str(sid) and not fields[2].startswith("Z"):
            alive.append(f"{fields[1]} {fields[3][:100]}")
    return alive


class OutputDrain:
    """Reads a server's output while it runs, so its log never blocks on a full pipe."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True, name="server-output")
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                with self._lock:
                    self._lines.append(line)
        except (OSError, ValueError):  # the stream is closed when the server is stopped
            return

    def text(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def wait_for(self, pattern: str, count: int, timeout: float = 60) -> list[re.Match[str]]:
        """Poll until ``pattern`` has matched at least ``count`` lines; return the matches."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                lines = list(self._lines)
            matches = [m for line in lines if (m := compiled.search(line))]
            if len(matches) >= count or time.monotonic() > deadline:
                return matches
            time.sleep(0.05)


@contextmanager
def framex_server(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, ready_timeout: float = 60
) -> Iterator[Server]:
    """Start `framex run --port <free> ARGS...` in its own session and stop it afterwards."""
    command = [sys.executable, "-m", "framex.cli", "run", "--host", "127.0.0.1", "--port", "{port}", *args]
    with _served(command, env, cwd, ready_timeout) as server:
        yield server


@contextmanager
def uvicorn_server(
    app: str, env: dict[str, str] | None = None, ready_timeout: float = 60, port: int | None = None
) -> Iterator[Server]:
    """Serve the ASGI app at ``module:attribute`` with uvicorn (it must answer `/health`),
    on ``port`` or a free one."""
    where = "{port}" if port is None else str(port)
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", where, "--no-access-log"]
    with _served(command, env, ROOT, ready_timeout) as server:
        yield server


def _port_of(command: list[str]) -> str:
    return command[command.index("--port") + 1]


@contextmanager
def _served(command: list[str], env: dict[str, str] | None, cwd: Path, ready_timeout: float) -> Iterator[Server]:
    """Run ``command`` (``{port}`` replaced by a free port) in its own session until the end.

    A port found free can be taken by another process (Ray opens many) before the
    server binds it; that start is retried on a new port.
    """
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEX")}
    environ.update(env or {})
    for attempt in range(3):
        port = free_port()
        process = subprocess.Popen(
            [part.replace("{port}", str(port)) for part in command],
            cwd=cwd,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port if '{port}' in ' '.join(command) else _port_of(command)}"
        server = Server(process, url)
        try:
            wait_ready(server.url, process, ready_timeout)
            break
        except RuntimeError as exc:
            if process.stdout is not None:
                process.stdout.close()
            lost_port = "address already in use" in str(exc).lower() or "failed to bind" in str(exc).lower()
            if attempt == 2 or not lost_port:
                raise
    try:
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
