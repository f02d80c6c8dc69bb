"""Hostile callers of a real FrameX service with the proxy: paths that try to forge log
lines, and slow clients that try to hold the server."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builtins.proxy.conftest import write_config
from tests.builtins.proxy.raw_upstream import RawUpstream, Seen, answer, ok
from tests.server import Server, framex_server

FORGERY = "%0D%0AERROR%20framex.auth:%20FORGED%0AINFO%20framex.access:%20GET%20/forged%20200"


async def never(upstream: RawUpstream, seen: Seen, writer: asyncio.StreamWriter) -> bool:
    await upstream.event("never").wait()  # silent until the end of the module
    return False


@pytest.fixture(scope="module")
def upstream() -> Iterator[RawUpstream]:
    behaviours = {"/api/v1/ok": ("GET", answer(ok(b"ok"))), "/api/v1/silent": ("GET", never)}
    with RawUpstream(behaviours).running() as running:
        yield running


@pytest.fixture
def service(upstream: RawUpstream, tmp_path: Path) -> Iterator[Server]:
    config = write_config(
        tmp_path / "config.yaml",
        {
            "load_builtin_plugins": ["proxy"],
            "load_plugins": [],
            "log": {"level": "debug", "format": "text"},
            "auth": {"rules": {"/api/v1/guarded/*": ["key-7d1e"]}},
            "plugins": {
                "proxy": {
                    "upstreams": {upstream.url: {"enable": ["/api/v1/*"], "openapi_path": "/openapi.json"}},
                    "timeout": 0.5,
                }
            },
        },
    )
    with framex_server("--config", str(config)) as server:
        yield server


def test_caller_text_cannot_forge_log_lines(service: Server) -> None:
    with httpx.Client(base_url=service.url, timeout=15) as client:
        assert client.get(httpx.URL(f"/api/v1/guarded/x{FORGERY}")).status_code == 401  # auth refusal, debug
        assert client.get(httpx.URL(f"/api/v1/ok{FORGERY}")).status_code == 404  # access line of a 404
        assert client.get("/api/v1/silent").status_code == 504  # the proxy's timeout warning
        assert client.get("/api/v1/ok").status_code == 200
    service.stop()
    lines = service.output().splitlines()
    assert any("framex.http" in line and "refused" in line for line in lines)  # the refusal was logged ...
    assert any("framex.proxy" in line and "/api/v1/silent" in line for line in lines)  # ... and the timeout
    forged = [line for line in lines if "FORGED" in line or "/forged" in line]
    assert forged  # the text is there, escaped inside the lines that carried it
    for line in forged:
        assert not line.startswith(("ERROR framex.auth", "INFO framex.access: GET /forged"))
        assert r"\r\nERROR framex.auth: FORGED\nINFO framex.access" in line


def test_slow_callers_do_not_stop_health_from_answering(service: Server) -> None:
    port = int(service.url.rsplit(":", 1)[1])
    request = b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: " + b"s" * 40
    stop = threading.Event()
    opened = threading.Event()
    sent: list[int] = []

    async def slow_callers() -> None:
        connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(200)]
        opened.set()
        try:
            for byte in range(len(request)):  # one byte a second on every connection
                for _, writer in connections:
                    writer.write(request[byte : byte + 1])
                sent.append(byte)
                await asyncio.sleep(1)
                if stop.is_set():
                    return
        finally:
            for _, writer in connections:
                writer.close()

    thread = threading.Thread(target=asyncio.run, args=(slow_callers(),), daemon=True)
    thread.start()
    try:
        assert opened.wait(30), "the 200 slow connections did not open"
        answers = []
        deadline = time.monotonic() + 4  # while they trickle, bounded in time
        with httpx.Client(base_url=service.url, timeout=5) as client:
            while time.monotonic() < deadline:
                answers.append(client.get("/health").text)
        assert len(sent) >= 3  # the slow callers were sending the whole time
        assert answers and set(answers) == {"ok"}
        with socket.create_connection(("127.0.0.1", port), timeout=5) as fresh:
            fresh.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            assert fresh.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        stop.set()
        thread.join(10)
