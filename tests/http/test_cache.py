"""Request caching: `@on_request(..., cache={...})` with the `cache` settings."""

from __future__ import annotations

import asyncio
import logging
import signal
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import framex
from framex.container import Container, close_container
from framex.errors import ConfigError, PluginDefinitionError
from framex.http import cache_stores
from framex.http.cache import (
    CACHE_HEADER,
    KEY_HEADER,
    STATUS_HEADER,
    FileStore,
    MemoryStore,
    RequestCache,
    default_key,
    header_value,
)
from tests.fixture_plugins import cached
from tests.server import framex_server, require_ray

PLUGIN = "tests.fixture_plugins.cached"
SQUARE = "/api/v1/cached/square"


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _fresh_plugin_state() -> None:
    cached.reset()


def build(**cache: Any) -> tuple[Container, Any]:
    """A container serving the `cached` fixture plugin with these `cache` settings, and its app."""
    container = framex.create_container(
        None, load_plugins=[PLUGIN], load_builtin_plugins=[], cache={"enabled": True, **cache}
    )
    return container, framex.create_app(container)


@contextmanager
def serving(**cache: Any) -> Iterator[tuple[TestClient, RequestCache]]:
    container, app = build(**cache)
    try:
        with TestClient(app) as client:
            yield client, container.cache()
    finally:
        close_container(container)


def get(client: TestClient, path: str, mode: str | None = None, **params: Any) -> httpx.Response:
    headers = {CACHE_HEADER: mode} if mode is not None else {}
    response = client.get(path, params=params, headers=headers)
    assert response.status_code < 500, response.text
    return response


def status(response: httpx.Response) -> str | None:
    return response.headers.get(STATUS_HEADER)


def data(response: httpx.Response) -> Any:
    return response.json()["data"]


# -- statuses and headers -----------------------------------------------------------


def test_miss_then_hit_replays_the_same_bytes() -> None:
    with serving() as (client, _):
        first = get(client, SQUARE, x=3)
        second = get(client, SQUARE, x=3)
    assert status(first) == "MISS" and status(second) == "HIT"
    assert first.headers[KEY_HEADER] == second.headers[KEY_HEADER] == default_key("GET", SQUARE, {"x": 3})
    assert second.content == first.content  # the stored bytes, timestamp included
    assert second.headers["content-type"] == "application/json"
    assert data(second) == {"x": 3, "square": 9, "call": 1, "pid": data(first)["pid"]}
    assert cached.CALLS["square"] == 1


def test_bypass_neither_reads_nor_writes_and_refresh_recomputes() -> None:
    with serving() as (client, _):
        assert status(get(client, SQUARE, x=2)) == "MISS"
        bypass = get(client, SQUARE, "bypass", x=2)
        assert status(bypass) == "BYPASS" and data(bypass)["call"] == 2  # the entry was not read
        assert data(get(client, SQUARE, x=2))["call"] == 1  # nor replaced

        assert status(get(client, SQUARE, "bypass", x=99)) == "BYPASS"
        assert status(get(client, SQUARE, x=99)) == "MISS"  # nothing was stored

        refresh = get(client, SQUARE, " Refresh ", x=2)  # case and spaces do not matter
        assert status(refresh) == "REFRESH" and data(refresh)["call"] == 5
        hit = get(client, SQUARE, "use", x=2)
        assert status(hit) == "HIT" and hit.content == refresh.content
    assert cached.CALLS["square"] == 5


def test_an_unknown_cache_header_is_a_400_naming_the_values() -> None:
    with serving() as (client, _):
        response = client.get(SQUARE, params={"x": 1}, headers={CACHE_HEADER: "sometimes"})
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400 and body["data"] is None
    assert body["message"] == "Invalid `X-FrameX-Cache` request header: use one of use, bypass, refresh."
    assert cached.CALLS["square"] == 0


def test_disabled_runs_the_handler_every_time() -> None:
    container = framex.create_container(None, load_plugins=[PLUGIN], load_builtin_plugins=[])
    assert container.settings().cache.enabled is False
    try:
        with TestClient(framex.create_app(container)) as client:
            responses = [get(client, SQUARE, x=5) for _ in range(3)]
            rejected = client.get(SQUARE, params={"x": 5}, headers={CACHE_HEADER: "always"})
            plain = get(client, "/api/v1/cached/plain")
    finally:
        close_container(container)
    assert [status(r) for r in responses] == ["DISABLED"] * 3
    assert all(KEY_HEADER not in r.headers for r in responses)
    assert [data(r)["call"] for r in responses] == [1, 2, 3]
    assert rejected.status_code == 400
    assert STATUS_HEADER not in plain.headers


def test_routes_without_cache_options_have_no_cache_layer() -> None:
    container, app = build()
    try:
        endpoints = {route.path: route.endpoint for route in app.routes if hasattr(route, "endpoint")}
        # One request pipeline: cached and plain routes run the same endpoint code.
        assert endpoints["/api/v1/cached/plain"].__code__ is endpoints[SQUARE].__code__
        with TestClient(app) as client:
            response = get(client, "/api/v1/cached/plain")
            # No cache layer reads the request's cache header (a cached route answers 400 to it).
            unread = client.get("/api/v1/cached/plain", headers={CACHE_HEADER: "bogus"})
            read = client.get(SQUARE, params={"x": 2}, headers={CACHE_HEADER: "bogus"})
        assert STATUS_HEADER not in response.headers and KEY_HEADER not in response.headers
        assert unread.status_code == 200 and STATUS_HEADER not in unread.headers
        assert read.status_code == 400
    finally:
        close_container(container)


def test_the_cache_option_is_not_reported_as_unknown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="framex.http")
    container, _ = build()
    close_container(container)
    assert not [r for r in caplog.records if "not used by this FrameX version" in r.getMessage()]


# -- keys -----------------------------------------------------------------------------


def test_the_key_differs_by_arguments_and_is_stable() -> None:
    order = "/api/v1/cached/order"
    with serving() as (client, _):
        three, four = get(client, SQUARE, x=3), get(client, SQUARE, x=4)
        assert three.headers[KEY_HEADER] != four.headers[KEY_HEADER]

        body = {"item": "tea", "quantity": 2, "notes": {"milk": "oat", "sugar": "no"}}
        reordered = {"notes": {"sugar": "no", "milk": "oat"}, "quantity": 2, "item": "tea"}
        first = client.post(order, json=body)
        same = client.post(order, json=reordered)
        other = client.post(order, json=body, params={"rush": "true"})
        assert (status(first), status(same), status(other)) == ("MISS", "HIT", "MISS")
        assert first.headers[KEY_HEADER] == same.headers[KEY_HEADER] != other.headers[KEY_HEADER]

        forward = get(client, "/api/v1/cached/tags", tags=["b", "a", "c"])
        backward = get(client, "/api/v1/cached/tags", tags=["c", "b", "a"])
        assert status(backward) == "HIT" and forward.headers[KEY_HEADER] == backward.headers[KEY_HEADER]
        assert data(backward) == ["a", "b", "c"] and cached.CALLS["tags"] == 1

    # The same digest in another app: method, route path and arguments only.
    with serving() as (client, _):
        assert get(client, SQUARE, x=3).headers[KEY_HEADER] == three.headers[KEY_HEADER]
    assert default_key("GET", SQUARE, {"x": 3}) != default_key("POST", SQUARE, {"x": 3})
    assert default_key("GET", SQUARE, {"x": 3}) != default_key("GET", "/api/v1/cached/short", {"x": 3})
    assert default_key("GET", SQUARE, {"s": {"b", "a"}}) == default_key("GET", SQUARE, {"s": {"a", "b"}})


def test_key_builder_picks_the_key() -> None:
    with serving() as (client, _):
        ann = get(client, "/api/v1/cached/user", user="ann", noise=1)
        again = get(client, "/api/v1/cached/user", user="ann", noise=2)
        bob = get(client, "/api/v1/cached/user", user="bob")
    assert (status(ann), status(again), status(bob)) == ("MISS", "HIT", "MISS")
    assert ann.headers[KEY_HEADER] == "user:ann" and bob.headers[KEY_HEADER] == "user:bob"
    assert data(again) == {"user": "ann", "noise": 1, "call": 1}


def test_the_key_header_cannot_be_used_to_inject_headers() -> None:
    with serving() as (client, _):
        response = get(client, "/api/v1/cached/hostile", key="x\r\nSet-Cookie: a=b ü")
    assert response.headers[KEY_HEADER] == "x%0D%0ASet-Cookie: a=b %C3%BC"
    assert "set-cookie" not in response.headers
    assert header_value("50% off") == "50%25 off"


# -- what is stored -------------------------------------------------------------------


def test_errors_and_non_2xx_answers_are_not_cached() -> None:
    flaky = "/api/v1/cached/flaky"
    with serving() as (client, _):
        conflicts = [client.get(flaky, params={"outcome": "conflict"}) for _ in range(2)]
        crashes = [client.get(flaky, params={"outcome": "crash"}) for _ in range(2)]
        missing = [client.get(flaky, params={"outcome": "missing"}) for _ in range(2)]
        broken = [client.get(flaky, params={"outcome": "unserializable"}) for _ in range(2)]
        fine = [client.get(flaky, params={"outcome": "fine"}) for _ in range(2)]
    assert [r.status_code for r in conflicts] == [409, 409]
    assert conflicts[0].json()["message"] == "Try again" and conflicts[0].headers["retry-after"] == "1"
    assert [r.status_code for r in crashes] == [500, 500] and "flaky crashed" not in crashes[0].text
    assert [r.status_code for r in missing] == [404, 404] and missing[0].json() == {"found": False}
    assert [r.status_code for r in broken] == [500, 500]
    for response in [*conflicts, *crashes, *missing, *broken]:
        assert status(response) == "MISS" and KEY_HEADER in response.headers
    assert [status(r) for r in fine] == ["MISS", "HIT"]
    assert cached.CALLS["flaky"] == 9


def test_a_response_with_headers_of_its_own_is_passed_through_not_stored() -> None:
    with serving() as (client, _):
        responses = [get(client, "/api/v1/cached/cookie") for _ in range(2)]
    assert [status(r) for r in responses] == ["MISS", "MISS"]
    assert [r.text for r in responses] == ["1", "2"]
    assert all(r.cookies["session"] == "only-for-you" for r in responses)


def test_status_code_and_raw_response_are_replayed() -> None:
    with serving() as (client, _):
        first = get(client, "/api/v1/cached/created", name="a")
        second = get(client, "/api/v1/cached/created", name="a")
    assert (first.status_code, second.status_code) == (201, 201)
    assert status(second) == "HIT" and second.json() == {"name": "a", "call": 1}


# -- expiry and size ------------------------------------------------------------------


def test_entries_expire_after_their_ttl() -> None:
    clock = Clock()
    with serving(ttl=60) as (client, cache):
        cache.clock = clock
        assert status(get(client, "/api/v1/cached/short")) == "MISS"  # the route's ttl: 5 s
        assert status(get(client, SQUARE, x=1)) == "MISS"  # the configured ttl: 60 s
        assert status(get(client, "/api/v1/cached/forever")) == "MISS"  # ttl -1

        clock.now += 4.999
        assert status(get(client, "/api/v1/cached/short")) == "HIT"
        clock.now += 0.001
        assert status(get(client, "/api/v1/cached/short")) == "MISS"

        clock.now += 54.999
        assert status(get(client, SQUARE, x=1)) == "HIT"
        clock.now += 0.001
        assert status(get(client, SQUARE, x=1)) == "MISS"

        clock.now += 10**9
        assert status(get(client, "/api/v1/cached/forever")) == "HIT"
    assert cached.CALLS["short"] == 2 and cached.CALLS["square"] == 2 and cached.CALLS["forever"] == 1


def test_max_size_evicts_the_oldest_entry() -> None:
    with serving(max_size=2) as (client, cache):
        assert isinstance(cache.store, MemoryStore)
        for x in (1, 2, 3):
            assert status(get(client, SQUARE, x=x)) == "MISS"
        assert len(cache.store) == 2
        assert status(get(client, SQUARE, x=3)) == "HIT"
        assert status(get(client, SQUARE, x=2)) == "HIT"  # a hit does not make an entry newer
        assert status(get(client, SQUARE, x=1)) == "MISS"  # evicted first; storing it evicts 2
        assert status(get(client, SQUARE, x=2)) == "MISS"  # ...and storing 2 evicts 3
        assert status(get(client, SQUARE, "refresh", x=1)) == "REFRESH"  # 1 stored again: newest
        assert status(get(client, SQUARE, x=3)) == "MISS"  # evicts 2, the oldest now
        assert status(get(client, SQUARE, x=1)) == "HIT"
        assert status(get(client, SQUARE, x=2)) == "MISS"


# -- one computation for identical concurrent misses -----------------------------------


@contextmanager
def asgi_app(**cache: Any) -> Iterator[tuple[Any, RequestCache]]:
    container, app = build(**cache)
    try:
        yield app, container.cache()
    finally:
        close_container(container)


async def wait_for_waiters(cache: RequestCache, count: int) -> None:
    """Until the first computation is held and ``count`` requests wait for it."""
    async with asyncio.timeout(10):
        await cached.GATE.entered.wait()
        # Not a timed wait: each pass yields once, so the other requests (same loop) run on
        # until they wait in the cache; the cache counts them but has no event to await.
        while cache.waiting() < count:  # noqa: ASYNC110
            await asyncio.sleep(0)


async def test_identical_concurrent_misses_compute_once() -> None:
    n = 8
    with asgi_app() as (app, cache):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            requests = [asyncio.create_task(client.get("/api/v1/cached/held", params={"x": 1})) for _ in range(n)]
            other = asyncio.create_task(client.get("/api/v1/cached/held", params={"x": 2}))
            await wait_for_waiters(cache, n - 1)
            assert cached.CALLS["held"] <= 2  # x=1 once, and x=2 does not wait for x=1
            cached.GATE.opened.set()
            responses = await asyncio.gather(*requests)
            assert (await other).json()["data"]["x"] == 2
            after = await client.get("/api/v1/cached/held", params={"x": 1})
    assert cached.CALLS["held"] == 2
    assert [r.status_code for r in responses] == [200] * n
    assert len({r.content for r in responses}) == 1
    assert [status(r) for r in responses] == ["MISS"] * n
    assert status(after) == "HIT" and after.content == responses[0].content
    assert cache.waiting() == 0


async def test_an_error_reaches_every_waiter_and_is_not_cached(caplog: pytest.LogCaptureFixture) -> None:
    n = 5
    caplog.set_level(logging.ERROR, logger="framex.http")
    with asgi_app() as (app, cache):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            params = {"x": 1, "fail": "true"}
            requests = [
                asyncio.create_task(client.get("/api/v1/cached/held", params=params, headers={"X-Request-ID": f"r{i}"}))
                for i in range(n)
            ]
            await wait_for_waiters(cache, n - 1)
            cached.GATE.opened.set()
            responses = await asyncio.gather(*requests)
            again = await client.get("/api/v1/cached/held", params=params)
    assert [r.status_code for r in responses] == [500] * n
    assert {r.json()["request_id"] for r in responses} == {f"r{i}" for i in range(n)}  # each its own id
    assert all("the held computation failed" not in r.text for r in responses)
    logged = [r.getMessage() for r in caplog.records if "/api/v1/cached/held failed" in r.getMessage()]
    assert len(logged) == n + 1
    assert again.status_code == 500 and status(again) == "MISS"
    assert cached.CALLS["held"] == 2  # once for the five, once more: the error was not stored


async def test_a_cancelled_computation_hands_over_to_a_waiter() -> None:
    with asgi_app() as (app, cache):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            leader = asyncio.create_task(client.get("/api/v1/cached/held", params={"x": 7}))
            await cached.GATE.entered.wait()
            waiter = asyncio.create_task(client.get("/api/v1/cached/held", params={"x": 7}))
            await wait_for_waiters(cache, 1)
            leader.cancel()
            with pytest.raises(asyncio.CancelledError):
                await leader
            cached.GATE.opened.set()
            response = await waiter
    assert response.status_code == 200 and status(response) == "MISS"
    assert response.json()["data"] == {"x": 7, "call": 2}  # the waiter computed it itself


# -- file mode ------------------------------------------------------------------------


def entry_files(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


def test_file_mode_writes_atomically_and_a_new_app_reads_the_entries(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    with serving(mode="file", file_dir=str(folder)) as (client, cache):
        assert isinstance(cache.store, FileStore)
        first = get(client, SQUARE, x=6)
        assert status(first) == "MISS"
        [file] = entry_files(folder)  # the entry, and no temporary file left behind
        assert file == cache.store.path(f"GET {SQUARE} {first.headers[KEY_HEADER]}")
        assert file.read_bytes().startswith(b"FRAMEX-CACHE 1\n") and file.read_bytes().endswith(first.content)
        assert file.stat().st_mode & 0o777 == 0o600 and folder.stat().st_mode & 0o777 == 0o700
        assert status(get(client, SQUARE, x=6)) == "HIT"
    with serving(mode="file", file_dir=str(folder)) as (client, _):
        again = get(client, SQUARE, x=6)
    assert status(again) == "HIT" and again.content == first.content
    assert cached.CALLS["square"] == 1


def test_a_failed_write_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_rename(src: str, dst: str) -> None:
        raise OSError("disk full")

    folder = tmp_path / "cache"
    caplog.set_level(logging.WARNING, logger="framex.cache")
    with serving(mode="file", file_dir=str(folder)) as (client, _):
        monkeypatch.setattr(cache_stores.os, "replace", no_rename)
        responses = [get(client, SQUARE, x=1) for _ in range(2)]
    assert [(r.status_code, status(r)) for r in responses] == [(200, "MISS"), (200, "MISS")]
    assert list(folder.iterdir()) == []
    assert any("Could not store" in r.getMessage() and "disk full" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "key",
    ["../../etc/passwd", "/etc/passwd", "..", ".", "", "a/../../b", "..\\..\\x", "nul\x00byte", "ü" * 500],
)
def test_file_mode_keeps_every_key_inside_the_folder(tmp_path: Path, key: str) -> None:
    folder = tmp_path / "cache"
    with serving(mode="file", file_dir=str(folder)) as (client, cache):
        assert status(get(client, "/api/v1/cached/hostile", key=key)) == "MISS"
        assert status(get(client, "/api/v1/cached/hostile", key=key)) == "HIT"
        assert isinstance(cache.store, FileStore)
        [file] = entry_files(folder)
        assert file.parent == folder.resolve() and len(file.name) == 64
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]  # nothing written next to it


def test_file_mode_refuses_a_file_that_leads_outside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder, outside = tmp_path / "cache", tmp_path / "precious.txt"
    folder.mkdir()
    outside.write_text("keep me")
    caplog.set_level(logging.WARNING, logger="framex.cache")
    with serving(mode="file", file_dir=str(folder)) as (client, cache):
        assert isinstance(cache.store, FileStore)
        planted = folder / cache.store.path("GET /api/v1/cached/hostile k").name
        planted.symlink_to(outside)
        assert cache.store.path("GET /api/v1/cached/hostile j").parent == folder  # other keys are fine
        with pytest.raises(ValueError, match="outside the cache folder"):
            cache.store.path("GET /api/v1/cached/hostile k")
        responses = [get(client, "/api/v1/cached/hostile", key="k") for _ in range(2)]
    assert [status(r) for r in responses] == ["MISS", "MISS"]
    assert outside.read_text() == "keep me" and planted.is_symlink()
    assert any("outside the cache folder" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"garbage",
        lambda data: data[:-3],  # truncated body
        lambda data: data.replace(b'"status": 200', b'"status": "200"'),
        lambda data: data.replace(b"FRAMEX-CACHE 1\n{", b"FRAMEX-CACHE 1\n["),
        lambda data: b"",
    ],
    ids=["garbage", "truncated", "bad-status", "bad-header", "empty"],
)
def test_a_corrupt_file_is_a_miss_then_valid_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Any
) -> None:
    folder = tmp_path / "cache"
    caplog.set_level(logging.WARNING, logger="framex.cache")
    with serving(mode="file", file_dir=str(folder)) as (client, _):
        assert status(get(client, SQUARE, x=8)) == "MISS"
        [file] = entry_files(folder)
        file.write_bytes(damage(file.read_bytes()))
        recomputed = get(client, SQUARE, x=8)
        assert status(recomputed) == "MISS" and data(recomputed)["call"] == 2
        hit = get(client, SQUARE, x=8)
    assert status(hit) == "HIT" and hit.content == recomputed.content
    assert [r.getMessage() for r in caplog.records if "is corrupt" in r.getMessage()] != []


def test_file_mode_expiry_and_eviction_remove_files(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    clock = Clock()
    with serving(mode="file", file_dir=str(folder), max_size=2) as (client, cache):
        cache.clock = clock
        assert status(get(client, "/api/v1/cached/short")) == "MISS"
        for x in (1, 2):
            assert status(get(client, SQUARE, x=x)) == "MISS"
        assert len(entry_files(folder)) == 2  # `short` was evicted first
        assert status(get(client, SQUARE, x=1)) == "HIT"
        assert status(get(client, "/api/v1/cached/short")) == "MISS"  # evicts x=1
        clock.now += 5
        assert status(get(client, "/api/v1/cached/short")) == "MISS"  # expired, stored again
        assert len(entry_files(folder)) == 2
        assert status(get(client, SQUARE, x=2)) == "HIT"
        assert status(get(client, SQUARE, x=1)) == "MISS"


def test_file_entries_survive_a_restart_of_framex_run(tmp_path: Path) -> None:
    env = {
        "FRAMEX__CACHE__ENABLED": "true",
        "FRAMEX__CACHE__MODE": "file",
        "FRAMEX__CACHE__FILE_DIR": str(tmp_path / "cache"),
    }
    args = ("--load-plugins", PLUGIN, "--load-builtin-plugins", "echo")
    with framex_server(*args, env=env) as server:
        first = httpx.get(f"{server.url}{SQUARE}", params={"x": 12}, timeout=30)
        assert server.stop(signal.SIGTERM) == 0
    with framex_server(*args, env=env) as server:
        second = httpx.get(f"{server.url}{SQUARE}", params={"x": 12}, timeout=30)
        other = httpx.get(f"{server.url}{SQUARE}", params={"x": 13}, timeout=30)
        assert server.stop(signal.SIGTERM) == 0
    assert (status(first), status(second), status(other)) == ("MISS", "HIT", "MISS")
    assert second.content == first.content
    assert data(second)["pid"] == data(first)["pid"] != data(other)["pid"]  # computed by the first server


@pytest.mark.ray
def test_the_ingress_caches_on_ray() -> None:
    require_ray()
    args = ("--load-plugins", PLUGIN, "--load-builtin-plugins", "echo", "--adapter", "ray")
    env = {"FRAMEX__RAY__NUM_CPUS": "2", "FRAMEX__CACHE__ENABLED": "true"}
    with framex_server(*args, env=env, ready_timeout=240) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            where = [client.get("/api/v1/cached/where") for _ in range(2)]
            square = [client.get(SQUARE, params={"x": 4}) for _ in range(2)]
            refreshed = client.get("/api/v1/cached/where", headers={CACHE_HEADER: "refresh"})
        assert server.stop(signal.SIGTERM, timeout=120) == 0
    assert [status(r) for r in where] == ["MISS", "HIT"] and where[1].content == where[0].content
    assert [status(r) for r in square] == ["MISS", "HIT"] and square[1].content == square[0].content
    assert status(refreshed) == "REFRESH" and data(refreshed)["call"] == 2
    assert data(where[0])["pid"] != data(square[0])["pid"]  # the class's replica vs the ingress


# -- definitions and settings -----------------------------------------------------------


def load_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str) -> Container:
    """A container with the plugin module ``name`` written from ``body``."""
    monkeypatch.syspath_prepend(str(tmp_path))
    header = "from starlette.requests import Request\nfrom framex.plugin import PluginMetadata, on_request\n"
    header += f"__plugin_meta__ = PluginMetadata(name={name!r})\n"
    (tmp_path / f"{name}.py").write_text(header + textwrap.dedent(body))
    return framex.create_container(None, load_plugins=[name], load_builtin_plugins=[], cache={"enabled": True})


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        (
            "cache_stream",
            """
            @on_request("/s", stream=True, cache={})
            async def s():
                yield 1
            """,
            r"`cache_stream.s`: @on_request\(cache=...\): a streaming API \(stream=True\) cannot be cached",
        ),
        (
            "cache_not_dict",
            """
            @on_request("/n", cache=True)
            async def n() -> int:
                return 1
            """,
            r"takes a dict such as \{'ttl': 60\}, or \{\} for the configured ttl; got bool",
        ),
        (
            "cache_zero_ttl",
            """
            @on_request("/z", cache={"ttl": 0})
            async def z() -> int:
                return 1
            """,
            r"`ttl` is a number of seconds > 0, or -1 for no expiry; got 0",
        ),
        (
            "cache_typo",
            """
            @on_request("/t", cache={"tll": 5})
            async def t() -> int:
                return 1
            """,
            r"unknown option\(s\) tll; accepted: ttl, key_builder",
        ),
        (
            "cache_bad_builder",
            """
            @on_request("/b", cache={"key_builder": "user"})
            async def b() -> int:
                return 1
            """,
            r"`key_builder` must be a callable returning a str",
        ),
        (
            "cache_request_param",
            """
            @on_request("/r", cache={})
            async def r(request: Request, x: int = 0) -> int:
                return x
            """,
            r"the default key cannot describe parameter\(s\) request .*give a `key_builder`",
        ),
    ],
)
def test_bad_route_options_fail_when_the_app_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str, message: str
) -> None:
    container = load_module(tmp_path, monkeypatch, name, body)
    try:
        with pytest.raises(PluginDefinitionError, match=message):
            framex.create_app(container)
    finally:
        close_container(container)


def test_a_failing_key_builder_is_a_500(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = """
    @on_request("/k", cache={"key_builder": lambda **_: 42})
    async def k() -> int:
        return 1
    """
    container = load_module(tmp_path, monkeypatch, "cache_int_key", body)
    try:
        with TestClient(framex.create_app(container)) as client:
            response = client.get("/api/v1/k")
    finally:
        close_container(container)
    assert response.status_code == 500 and "request_id" in response.json()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ttl": 0}, r"`cache.ttl`: Value error, the ttl is a number of seconds > 0, or -1"),
        ({"ttl": -5}, r"`cache.ttl`: Value error"),
        ({"ttl": "soon"}, r"`cache.ttl`: Input should be a valid integer"),
        ({"max_size": 0}, r"`cache.max_size`: Input should be greater than or equal to 1"),
        ({"mode": "disk"}, r"`cache.mode`: Input should be 'memory' or 'file'"),
        ({"enabled": "perhaps"}, r"`cache.enabled`: Input should be a valid boolean"),
        ({"size": 10}, r"`cache.size`: unknown key. Accepted keys here: enabled, file_dir, max_size, mode, ttl"),
    ],
)
def test_bad_cache_settings_are_config_errors(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        framex.create_container(None, cache=settings)


def test_cache_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAMEX__CACHE__TTL", "-1")
    monkeypatch.setenv("FRAMEX__CACHE__MODE", "file")
    settings = framex.create_container(None).settings().cache
    assert (settings.enabled, settings.ttl, settings.mode, settings.max_size) == (False, -1, "file", 1024)
    monkeypatch.setenv("FRAMEX__CACHE__TTL", "0")
    with pytest.raises(ConfigError, match=r"`cache.ttl` \(set by environment variable `FRAMEX__CACHE__TTL`\)"):
        framex.create_container(None)
