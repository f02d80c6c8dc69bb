"""Path rules and keys of ``plugins.proxy``."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from framex.builtins.proxy.client import Upstream
from framex.builtins.proxy.config import ProxySettings, UpstreamSettings


def test_disable_wins_over_enable() -> None:
    rules = UpstreamSettings(enable=["/api/v1/*"], disable=["/api/v1/admin/*", "/api/v1/secret"])
    assert rules.allows("/api/v1/items")
    assert not rules.allows("/api/v1/admin/users")
    assert not rules.allows("/api/v1/secret")
    assert rules.allows("/api/v1/secrets")
    assert not rules.allows("/other")


def test_the_exact_key_rule_wins_then_the_longest_prefix() -> None:
    rules = UpstreamSettings(auth={"/api/*": "a", "/api/v1/*": "b", "/api/v1/x": "c"})
    assert rules.key_for("/api/v1/x") == "c"
    assert rules.key_for("/api/v1/y") == "b"
    assert rules.key_for("/api/v2") == "a"
    assert rules.key_for("/health") is None


def test_keys_are_secret_in_reprs() -> None:
    settings = ProxySettings(upstreams={"http://h:1/": {"auth": {"/x": "hunter2"}}})
    assert "hunter2" not in repr(settings)
    assert list(settings.upstreams) == ["http://h:1"]  # a trailing slash is dropped


def test_proxy_functions_find_their_service() -> None:
    settings = ProxySettings(proxy_functions={"http://a:1": ["m.f"], "http://b:2/": ["m.g"]})
    assert settings.function_home("m.f") == "http://a:1"
    assert settings.function_home("m.g") == "http://b:2"
    assert settings.function_home("m.h") is None


def test_the_upstream_header_cap_defaults_to_64_kib_and_reaches_the_pools() -> None:
    assert ProxySettings().max_header_bytes == 64 * 1024
    settings = ProxySettings(max_header_bytes=8192)
    upstream = Upstream("http://127.0.0.1:1", UpstreamSettings(), settings)

    async def cap() -> int:
        return upstream.pool().max_header_bytes

    assert asyncio.run(cap()) == 8192
    with pytest.raises(ValidationError, match="max_header_bytes"):
        ProxySettings(max_header_bytes=10)


def test_a_key_that_would_break_its_header_line_is_refused() -> None:
    with pytest.raises(ValidationError, match="must be printable ASCII"):
        UpstreamSettings(auth={"/x": "key\r\nx-injected: 1"})
