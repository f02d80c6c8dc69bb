"""`@on_proxy` functions: found among imported modules only, placed per container."""

from __future__ import annotations

import sys
from typing import Any

from framex import create_container, use_container
from framex.plugin.proxy import ProxyFunction, ProxyFunctions
from tests.fixture_plugins import proxy_functions
from tests.fixture_plugins.proxy_functions import raw_bytes

FUNCTIONS = "tests.fixture_plugins.proxy_functions"


def test_a_decorated_function_is_found_by_its_name() -> None:
    table = ProxyFunctions()
    record = table.get(f"{FUNCTIONS}.raw_bytes")
    assert isinstance(record, ProxyFunction) and record.func.__name__ == "raw_bytes"
    assert table.get(f"{FUNCTIONS}.raw_bytes") is record


def test_undecorated_and_unknown_names_are_not_found() -> None:
    table = ProxyFunctions()
    assert table.get("os.system") is None  # importable, but not an @on_proxy function
    assert table.get(f"{FUNCTIONS}.Point") is None
    assert table.get(f"{FUNCTIONS}.nothing_here") is None
    assert table.get("") is None


def test_a_name_never_imports_a_module() -> None:
    name = "tests.fixture_plugins.proxy_unimported"  # exists, and defines an @on_proxy function
    assert name not in sys.modules
    assert ProxyFunctions().get(f"{name}.never_run") is None
    assert name not in sys.modules


async def test_placement_is_per_container() -> None:
    placed, here = (create_container(None, load_builtin_plugins=[], load_plugins=[]) for _ in range(2))
    sent: list[tuple[str, str, dict[str, Any]]] = []

    async def call_remote(url: str, record: ProxyFunction, kwargs: dict[str, Any]) -> Any:
        sent.append((url, record.name, kwargs))
        return b"from " + url.encode()

    placed.proxy_functions().place(lambda name: "http://other" if name.endswith("raw_bytes") else None, call_remote)
    with use_container(placed):
        assert await raw_bytes(data=b"x") == b"from http://other"
    with use_container(here):
        assert await raw_bytes(data=b"x") == b"x\x00\xff"  # not placed in this service: runs here
    assert sent == [("http://other", f"{FUNCTIONS}.raw_bytes", {"data": b"x"})]
    assert proxy_functions.raw_bytes is raw_bytes
