"""Proxy functions and ``call_plugin_api`` through the proxy, against a real FrameX upstream."""

from __future__ import annotations

import base64
from datetime import datetime

import httpx
import pytest

from framex.container import create_container, use_container
from framex.errors import UpstreamError
from tests.builtins.proxy.conftest import FUNCTIONS, UPSTREAM_KEY, proxy_settings
from tests.fixture_plugins.proxy_functions import Point, Summary, raw_bytes, summarize
from tests.server import Server


def test_call_plugin_api_reaches_an_api_only_an_upstream_serves(proxy: httpx.Client) -> None:
    assert proxy.get("/api/v1/user/greet", params={"name": "bo"}).json()["data"] == "hello bo hello bo"


def test_call_plugin_api_streams_an_upstream_stream(proxy: httpx.Client) -> None:
    assert proxy.get("/api/v1/user/count", params={"n": 3}).json()["data"] == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_a_listed_proxy_function_runs_on_its_service_and_its_result_is_decoded(proxy: httpx.Client) -> None:
    data = proxy.get("/api/v1/user/summarize").json()["data"]
    assert data == {
        "type": "Summary",
        "later_type": "datetime",
        "total": 6,
        "later": "2026-01-02T04:04:05",
        "blob": base64.urlsafe_b64encode(b"\xfe\x01\x00").decode(),
        "moved": {"x": 2, "y": 3},
        "served_by": "upstream",
    }


async def test_proxy_functions_in_process(plain_upstream: Server, framex_upstream: Server) -> None:
    container = create_container(
        load_builtin_plugins=["proxy"],
        load_plugins=[],
        plugins={"proxy": proxy_settings(plain_upstream.url, framex_upstream.url)},
    )
    with use_container(container):
        runtime = container.runtime()
        await runtime.start()
        try:
            result = await summarize(
                items=[4, 5], when=datetime(2026, 5, 1, 23, 30), blob=b"\x00\xff", point=Point(x=0, y=0), shift=5
            )
            assert isinstance(result, Summary)
            assert result.later == datetime(2026, 5, 2, 0, 30)
            assert result.moved == Point(x=5, y=5)
            assert result.served_by == "upstream"
            binary = bytes(range(256))
            assert await raw_bytes(data=binary) == binary + b"\x00\xff"  # any bytes, as base64 both ways
            with pytest.raises(UpstreamError, match=r"explode.*answered 500") as failed:
                from tests.fixture_plugins.proxy_functions import explode

                await explode()
            assert "secret detail" not in str(failed.value)  # the upstream's 500 keeps its exception text
            with pytest.raises(TypeError, match="pass its arguments by name"):
                await summarize([1])  # type: ignore[call-arg]
        finally:
            await runtime.stop()


async def test_an_unlisted_proxy_function_runs_here() -> None:
    container = create_container(load_builtin_plugins=["proxy"], load_plugins=[])
    with use_container(container):
        result = await summarize(items=[1], when=datetime(2026, 1, 1), blob=b"a", point=Point(x=1, y=1))
    assert result.served_by == "here"


def test_the_remote_endpoint_serves_registered_functions_only(framex_upstream: Server) -> None:
    url = f"{framex_upstream.url}/api/v1/proxy/remote"
    key = {"Authorization": UPSTREAM_KEY}
    assert httpx.post(url, json={"func": f"{FUNCTIONS}.explode", "kwargs": {}}).status_code == 401
    for name in ("os.system", "builtins.eval", f"{FUNCTIONS}.Point", "tests.fixture_plugins.proxied.guarded"):
        response = httpx.post(url, json={"func": name, "kwargs": {"command": "true"}}, headers=key)
        assert response.status_code == 404, name
        assert response.json()["message"] == f"No proxy function `{name}` on this service."
    ok = httpx.post(
        url, json={"func": f"{FUNCTIONS}.raw_bytes", "kwargs": {"data": base64.b64encode(b"hi").decode()}}, headers=key
    )
    assert base64.urlsafe_b64decode(ok.json()["data"]) == b"hi\x00\xff"


def test_arguments_are_validated_against_the_functions_own_annotations(framex_upstream: Server) -> None:
    url = f"{framex_upstream.url}/api/v1/proxy/remote"
    key = {"Authorization": UPSTREAM_KEY}
    # A caller naming a class gets no class: the receiver validates into its own `Point`.
    call = {
        "func": f"{FUNCTIONS}.summarize",
        "kwargs": {
            "items": [1],
            "when": "2026-01-01T00:00:00",
            "blob": "",
            "point": {"__class__": "os.system", "x": "1"},
        },
    }
    response = httpx.post(url, json=call, headers=key)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["data"]] == [["point", "y"]]
    extra = httpx.post(url, json={"func": f"{FUNCTIONS}.raw_bytes", "kwargs": {"data": "", "more": 1}}, headers=key)
    assert extra.status_code == 422
