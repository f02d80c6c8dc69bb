"""The compiled request path over real HTTP: two `framex run` servers, compiled and not, answer alike.

A fixed list of requests (tests/http/signature_examples.py) goes to both servers over
keep-alive connections, chunked bodies included; the answers are compared as the
in-process differential test compares them, uvicorn's own headers included.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from tests.http.differential import PLUGIN, Twins
from tests.http.signature_examples import INVALID, OTHER_ANSWERS, VALID
from tests.server import OutputDrain, framex_server

CALLS = [call for call, _ in VALID.values()] + [call for call, _ in INVALID.values()] + OTHER_ANSWERS
HOST = "framex.test"
"""Sent to both servers: otherwise each would write its own port into redirects and echoes."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twins]:
    config = tmp_path_factory.mktemp("compiled-serving") / "framex.yaml"
    # No body limit: with one, a chunked body takes FastAPI's path on both servers.
    config.write_text(f"load_plugins: [{PLUGIN}]\nload_builtin_plugins: []\nserver:\n  max_body_bytes: null\n")
    with serve(config, compiled=True) as compiled, serve(config, compiled=False) as fastapi:
        yield Twins(compiled, fastapi)


@contextmanager
def serve(config: Path, compiled: bool) -> Iterator[httpx.Client]:
    env = {"FRAMEX__SERVER__COMPILED_ROUTES": str(compiled).lower()}
    with framex_server("--config", str(config), env=env) as server:
        assert server.process.stdout is not None
        server.drain = OutputDrain(server.process.stdout)  # tracebacks of the 500s must not fill the pipe
        # One connection: every request reuses it (keep-alive) unless the server closes it.
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        with httpx.Client(base_url=server.url, headers={"Host": HOST}, limits=limits, timeout=30) as client:
            yield client


def local_port(response: httpx.Response) -> int:
    """The client side port of the connection the response came on."""
    return int(response.extensions["network_stream"].get_extra_info("client_addr")[1])


def test_real_servers_answer_alike(served: Twins) -> None:
    for call in CALLS:
        served.check(call)


def test_keep_alive_connections_are_reused_alike(served: Twins) -> None:
    ports: dict[str, list[int]] = {"compiled": [], "fastapi": []}
    for call in CALLS:
        for name, client in (("compiled", served.compiled), ("fastapi", served.fastapi)):
            ports[name].append(local_port(served.send(client, call)))
    # Every answer, the errors and the chunked requests' included, leaves the connection open.
    assert len(set(ports["fastapi"])) == 1
    assert len(set(ports["compiled"])) == 1


def test_chunked_bodies_answer_alike(served: Twins) -> None:
    for call, _ in (VALID["body model"], VALID["form"], VALID["files"], INVALID["fields of a body model"]):
        for chunks in (2, 7):
            served.check(replace(call, chunks=chunks))
