from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.browser.cdp import Browser, chromium, find_chromium
from tests.server import Server, framex_server


@pytest.fixture(scope="session")
def chromium_path() -> str:
    found = find_chromium()
    if found is None:
        pytest.skip("Chromium is not installed: `apt-get install -y chromium` (Debian) to run the browser tests")
    return found


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    async with chromium(chromium_path) as running:
        yield running


@contextmanager
def serve(folder: Path, **settings: Any) -> Iterator[Server]:
    """`framex run` on 127.0.0.1 with echo, this repository's plugins and ``settings``."""
    config: dict[str, Any] = {
        "load_builtin_plugins": ["echo"],
        "load_plugins": ["plugins", "tests.fixture_plugins.console_probe"],
        "log": {"access_log": False},
        **settings,
    }
    path = folder / "framex.yaml"
    path.write_text(yaml.safe_dump(config))
    with framex_server("--config", str(path)) as server:
        yield server
