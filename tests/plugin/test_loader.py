from __future__ import annotations

import sys

import pytest

from framex.config import Settings
from framex.errors import ApiNotFoundError, ConfigError, PluginDefinitionError, PluginLoadError
from framex.plugin import ApiType, on_register, on_request
from framex.plugin.loader import full_path
from framex.plugin.registry import PluginRegistry

FP = "tests.fixture_plugins"


def registry(**settings: object) -> PluginRegistry:
    return PluginRegistry(Settings.model_validate(settings))


def test_full_path_prefix_rule() -> None:
    assert full_path("/echo") == "/api/v1/echo"
    assert full_path("/api/v1/demo/run") == "/api/v1/demo/run"
    assert full_path("/api/v1") == "/api/v1"
    assert full_path("/api/v10/x") == "/api/v1/api/v10/x"
    assert full_path("/raw", api_prefix=False) == "/raw"


def test_module_plugin_apis_and_names() -> None:
    reg = registry()
    [plugin] = reg.load(f"{FP}.kitchen")
    assert plugin.name == "kitchen" and plugin.metadata.version == "2.3.4"
    names = {api.name for api in plugin.apis}
    assert {"kitchen.KitchenPlugin.defaults", "kitchen.KitchenPlugin.add", "kitchen.module_level"} <= names
    add = reg.get_api("kitchen.KitchenPlugin.add")
    assert add.spec.call_type is ApiType.FUNC and add.path is None
    assert [p.name for p in add.signature.parameters.values()] == ["a", "b"]
    assert add.signature.parameters["b"].default == 10
    assert reg.get_api("/kitchen/defaults").name == "kitchen.KitchenPlugin.defaults"
    assert reg.get_api("/api/v1/kitchen/defaults").name == "kitchen.KitchenPlugin.defaults"


def test_package_collection_loads_each_plugin_module() -> None:
    reg = registry()
    loaded = reg.load(f"{FP}.collection")
    assert [p.name for p in loaded] == ["alpha", "beta"]  # helpers.py has no __plugin_meta__: skipped
    assert reg.load(f"{FP}.collection") == []  # loading again is a no-op


def test_package_plugin_with_meta_in_init_is_one_plugin() -> None:
    reg = registry()
    [demo] = reg.load("plugins.demo")
    assert demo.name == "demo"
    assert {a.path for a in demo.apis} >= {"/api/v1/demo/run", "/api/v1/demo/total", "/api/v1/demo/scale"}


def test_broken_import_names_plugin_and_cause() -> None:
    reg = registry()
    with pytest.raises(
        PluginLoadError, match=r"Plugin `.*broken_import` failed to import: RuntimeError: broken on purpose"
    ):
        reg.load(f"{FP}.broken_import")
    assert f"{FP}.broken_import" not in sys.modules
    assert reg.plugins == {}


def test_missing_module() -> None:
    with pytest.raises(PluginLoadError, match=r"Plugin `tests.fixture_plugins.nope` was not found"):
        registry().load(f"{FP}.nope")


def test_module_without_meta() -> None:
    with pytest.raises(
        PluginLoadError, match=r"`tests.fixture_plugins.no_meta` is not a plugin: it has no `__plugin_meta__`"
    ):
        registry().load(f"{FP}.no_meta")


def test_package_without_plugins() -> None:
    with pytest.raises(PluginLoadError, match="holds no plugin"):
        registry().load(f"{FP}.broken_pkg")


def test_duplicate_plugin_name() -> None:
    reg = registry()
    reg.load(f"{FP}.collection.alpha")
    with pytest.raises(
        PluginLoadError, match=r"Plugin `alpha` is already loaded from `.*collection.alpha`.*other.alpha"
    ):
        reg.load(f"{FP}.other.alpha")


def test_duplicate_route() -> None:
    reg = registry()
    reg.load(f"{FP}.collection.alpha")
    with pytest.raises(
        PluginDefinitionError,
        match=r"`GET /api/v1/alpha` is declared twice: by `alpha.alpha` and by `route_clash.alpha_again`",
    ):
        reg.load(f"{FP}.route_clash")
    assert "route_clash" not in reg.plugins  # nothing half-registered


def test_two_body_models_rejected() -> None:
    with pytest.raises(PluginDefinitionError, match="takes 2 pydantic model parameters"):
        registry().load(f"{FP}.two_bodies")


def test_invalid_plugin_config_stops_loading() -> None:
    reg = registry(plugins={"configured": {"limit": 1, "lable": "x"}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\): lable\. Accepted keys: label, limit"):
        reg.load(f"{FP}.configured")


def test_missing_required_api_names_it() -> None:
    reg = registry()
    reg.load(f"{FP}.needs_missing")
    with pytest.raises(ApiNotFoundError, match=r"Plugin `needs_missing` requires API `/api/v1/not_served`"):
        reg.check_requirements()


def test_builtin_plugins() -> None:
    reg = registry()
    [echo] = reg.load_builtin("echo")
    assert echo.module.__name__ == "framex.builtins.echo"
    with pytest.raises(PluginLoadError, match="There is no built-in plugin `nope`"):
        reg.load_builtin("nope")


def test_decorator_validation() -> None:
    # A path without its leading `/` gets one, as in FrameX-kit (docs/migrating.md).
    def handler() -> None: ...

    assert on_request("echo")(handler).__framex_api__.path == "/echo"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="unknown HTTP method"):
        on_request("/x", methods=["FETCH"])
    with pytest.raises(ValueError, match="unknown call_type 'rpc'"):
        on_request("/x", call_type="rpc")
    with pytest.raises(ValueError, match="needs a path"):
        on_request(call_type=ApiType.ALL)
    with pytest.raises(TypeError, match="decorates a class"):
        on_register()(len)  # type: ignore[type-var]


def test_on_request_leaves_function_callable() -> None:
    @on_request("/x")
    def handler(a: int) -> int:
        return a + 1

    assert handler(1) == 2
