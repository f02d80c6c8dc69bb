from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from framex import load_plugins
from framex.container import Container
from framex.errors import ApiNotDeclaredError, ApiNotFoundError, ConfigError
from framex.plugin import call_plugin_api, get_plugin_config
from tests.fixture_plugins.configured import Settings as ConfiguredSettings
from tests.fixture_plugins.kitchen import Order


async def test_call_by_path_and_by_function_name(framex_container: Container) -> None:
    assert await call_plugin_api("/api/v1/echo", message="hi") == "hi"
    assert await call_plugin_api("/echo", message="short") == "short"
    assert await call_plugin_api("kitchen.KitchenPlugin.add", a=1) == 11
    assert await call_plugin_api("kitchen.KitchenPlugin.add", a=1, b=2) == 3
    assert await call_plugin_api("demo.run_job", x=21) == 42


async def test_function_api_gets_python_objects(framex_container: Container) -> None:
    result = await call_plugin_api("echo.EchoPlugin.confess", message="m", call_back=str.upper)
    assert result == "I am calling with message=m,call_back_result=M"


async def test_dict_payload_becomes_the_model(framex_container: Container) -> None:
    assert await call_plugin_api("/kitchen/both", order={"item": "tea", "quantity": 2}) == "2xtea"
    assert await call_plugin_api("/kitchen/both", order=Order(item="cake")) == "1xcake"
    with pytest.raises(ValueError, match="item"):
        await call_plugin_api("/kitchen/both", order={"item": ""})


async def test_sync_handler_and_module_level_handler(framex_container: Container) -> None:
    result = await call_plugin_api("/kitchen/sync", x=4)
    assert result["x"] == 4
    assert await call_plugin_api("kitchen.module_level", word="ab") == "abab"


async def test_stream_api_returns_async_iterator(framex_container: Container) -> None:
    items = [item async for item in await call_plugin_api("/kitchen/stream", n=2)]
    assert items == [{"i": 0}, {"i": 1}]


async def test_unknown_api_suggests_close_names(framex_container: Container) -> None:
    with pytest.raises(
        ApiNotFoundError, match=r"No loaded plugin provides API `/api/v1/ecko`\. Did you mean `/api/v1/echo`"
    ):
        await call_plugin_api("/api/v1/ecko", message="x")


async def test_wrong_arguments_list_accepted_ones(framex_container: Container) -> None:
    with pytest.raises(TypeError, match=r"API `/api/v1/echo`: unexpected argument\(s\) `msg`\. It takes `message`\."):
        await call_plugin_api("/api/v1/echo", msg="x")
    with pytest.raises(TypeError, match=r"missing a required argument: 'a'"):
        await call_plugin_api("kitchen.KitchenPlugin.add")


def test_undeclared_api_is_rejected_inside_a_plugin(framex_client: TestClient) -> None:
    ok = framex_client.get("/api/v1/kitchen/echo_via_call", params={"message": "declared"})
    assert ok.json()["data"] == "declared"
    refused = framex_client.get("/api/v1/kitchen/undeclared")
    assert refused.status_code == 500  # a plugin bug, not a client error


async def test_undeclared_api_error_message(framex_container: Container) -> None:
    from framex.context import current_plugin

    registry = framex_container.registry()
    registry.load_configured()
    token = current_plugin.set(registry.plugins["kitchen"])
    try:
        with pytest.raises(
            ApiNotDeclaredError,
            match=r"Plugin `kitchen` called `/api/v1/demo/run` without declaring it\. "
            r"Add `/api/v1/demo/run` to `required_remote_apis`",
        ):
            await call_plugin_api("/api/v1/demo/run", x=1)
        assert await call_plugin_api("kitchen.KitchenPlugin.add", a=1) == 11  # its own APIs are fine
    finally:
        current_plugin.reset(token)


async def test_call_from_on_start(framex_container: Container) -> None:
    # greeter's on_start calls the echo plugin; it runs lazily on the first call here.
    assert await call_plugin_api("/greeter/ready") == {"sample": "ready"}


async def test_scripts_load_plugins_then_call(framex_container: Container) -> None:
    load_plugins("tests.fixture_plugins.collection")
    assert await call_plugin_api("/alpha") == "alpha"


class TestPluginConfig:
    @pytest.fixture
    def framex_overrides(self) -> dict[str, object]:
        return {"load_plugins": ["tests.fixture_plugins.configured"], "plugins": {"configured": {"limit": 9}}}

    async def test_typed_plugin_config(self, framex_container: Container) -> None:
        assert get_plugin_config("configured", ConfiguredSettings) == ConfiguredSettings(limit=9)
        assert await call_plugin_api("/configured/show") == {"limit": 9, "label": "default", "same": True}
        assert get_plugin_config("unconfigured", ConfiguredSettings) == ConfiguredSettings()
        with pytest.raises(TypeError, match="must be a pydantic model"):
            get_plugin_config("configured", dict)  # type: ignore[type-var]

    def test_unknown_keys_rejected(self, framex_container: Container) -> None:
        class Narrow(BaseModel):
            label: str = ""

        with pytest.raises(
            ConfigError, match=r"`plugins.configured`\) has unknown key\(s\): limit\. Accepted keys: label"
        ):
            get_plugin_config("configured", Narrow)
