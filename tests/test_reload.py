"""`framex run --reload`: a real server restarted when a plugin module or the config file changes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.server import ROOT, OutputDrain, Server, framex_server

RELOAD_DEADLINE = 5.0
"""Seconds from an edit to the first answer of the edited code (the issue's promise)."""

PLUGIN = """
from framex.plugin import PluginMetadata, on_request

__plugin_meta__ = PluginMetadata(name="hot")


@on_request("/hot/word")
async def word() -> str:
    return "{word}"
"""


def write_plugin(folder: Path, word: str) -> None:
    path = folder / "hot.py"
    path.write_text(PLUGIN.format(word=word))


def status(server: Server, path: str) -> int | None:
    """The status of ``GET path``; None when the request met the restart (the old server
    closes connections it accepted but had not read yet)."""
    try:
        return httpx.get(f"{server.url}{path}", timeout=5).status_code
    except httpx.TransportError:
        return None


def word(server: Server) -> str | None:
    try:
        response = httpx.get(f"{server.url}/api/v1/hot/word", timeout=5)
    except httpx.TransportError:
        return None
    return str(response.json()["data"]) if response.status_code == 200 else None


def wait_for_word(server: Server, expected: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (got := word(server)) != expected:
        assert time.monotonic() < deadline, f"still {got!r} {timeout} s after the edit, expected {expected!r}"
        time.sleep(0.05)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_plugin(tmp_path, "before")
    (tmp_path / "framex.yaml").write_text("load_plugins: [hot]\n")
    return tmp_path


def test_reload_picks_up_an_edited_plugin(project: Path) -> None:
    with framex_server("--config", "framex.yaml", "--reload", cwd=project, env={"PYTHONPATH": str(ROOT)}) as server:
        assert server.process.stdout is not None
        output = OutputDrain(server.process.stdout)
        assert word(server) == "before"
        write_plugin(project, "after")
        wait_for_word(server, "after", RELOAD_DEADLINE)
        assert output.wait_for(r"Changed: hot\.py; restarting the server", 1)
        # A plugin that no longer imports: reported, and served again once fixed.
        (project / "hot.py").write_text("raise RuntimeError('half-written')\n")
        assert output.wait_for(r"it starts again when a file changes", 1)
        write_plugin(project, "fixed")
        wait_for_word(server, "fixed", RELOAD_DEADLINE)
        assert server.stop() == 0


def test_reload_picks_up_an_edited_config(project: Path) -> None:
    with framex_server("--config", "framex.yaml", "--reload", cwd=project, env={"PYTHONPATH": str(ROOT)}) as server:
        assert httpx.get(f"{server.url}/api/v1/echo", params={"message": "x"}).status_code == 404
        (project / "framex.yaml").write_text("load_plugins: [hot]\nload_builtin_plugins: [echo]\n")
        deadline = time.monotonic() + RELOAD_DEADLINE
        while status(server, "/api/v1/echo?message=x") != 200:
            assert time.monotonic() < deadline, "the edited configuration was not served"
            time.sleep(0.05)
        assert server.stop() == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--workers", "2"), "`--reload` runs one server process and cannot be combined with `server.workers: 2`"),
        (("--adapter", "ray"), "`--reload` works with the local backend only"),
    ],
)
def test_reload_is_refused_where_it_cannot_work(args: tuple[str, ...], expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEX")}
    result = subprocess.run(
        [sys.executable, "-m", "framex.cli", "run", "--reload", "--port", "0", "--load-plugins", "plugins.demo", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"framex: error: {expected}"), result.stderr
