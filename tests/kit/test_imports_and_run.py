"""FrameX-kit's public import paths, and `framex.run` called the kit's way."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import framex
from framex.container import Container, get_container
from tests.kit.conftest import PLUGINS


def test_kit_import_paths_are_framex_objects() -> None:
    import framex.plugin
    from framex.config import settings
    from framex.log import logger as log_logger
    from framex.plugin.model import ApiType, PluginApi, PluginMetadata
    from framex.utils import StreamEnventType, make_stream_event

    assert ApiType is framex.plugin.ApiType and PluginMetadata is framex.PluginMetadata
    assert PluginApi is framex.PluginApi is framex.plugin.PluginApi
    assert framex.logger is log_logger
    for name in ("get_plugin", "register_proxy_func", "load_plugins", "load_builtin_plugins"):
        assert callable(getattr(framex.plugin, name)), name
    assert callable(framex.BasePlugin.check_health) and callable(framex.BasePlugin._post_call_remote_api_hook)
    assert settings.server.host == "127.0.0.1"
    assert make_stream_event(StreamEnventType.MESSAGE_CHUNK, "é") == 'event: message_chunk\ndata: {"content": "é"}\n\n'
    assert make_stream_event("debug", {"a": 1}) == 'event: debug\ndata: {"a": 1}\n\n'
    assert make_stream_event(StreamEnventType.FINISH) == "event: finish\ndata: {}\n\n"


async def test_register_proxy_func_accepts_proxy_functions_only() -> None:
    from framex.errors import FrameXError
    from tests.fixture_plugins.proxy_functions import summarize

    await framex.register_proxy_func(summarize)

    async def plain() -> None: ...

    with pytest.raises(FrameXError, match=r"is not a proxy function\. Decorate it with `@on_proxy"):
        await framex.register_proxy_func(plain)


def test_run_test_mode_with_overrides_keeps_plugins_loaded_before(default_container: Container) -> None:
    framex.load_builtin_plugins("echo")
    framex.load_plugins(str(PLUGINS / "kit_alias.py"))
    app = framex.run(test_mode=True, server__title="Kit")
    container = get_container()
    assert container is not default_container and container.settings().server.title == "Kit"
    assert {"echo", "kit_alias"} <= set(container.registry().plugins)
    assert app.title == "Kit"


def test_run_accepts_kit_keywords_with_a_deprecation_warning(default_container: Container) -> None:
    with pytest.warns(DeprecationWarning, match=r"server_port= -> server__port=.*use_ray= -> adapter"):
        framex.run(test_mode=True, server_host="127.0.0.2", server_port=9123, use_ray=False, enable_proxy=True)
    settings = get_container().settings()
    assert (settings.server.host, settings.server.port, settings.adapter) == ("127.0.0.2", 9123, "local")
    assert "proxy" in settings.load_builtin_plugins


def test_load_plugins_by_path_errors_name_the_path(kit_container: Container) -> None:
    with pytest.raises(ImportError, match=r"Plugin path `/no/such/folder` does not exist\. Pass an existing"):
        framex.load_plugins("/no/such/folder")


def test_a_folder_with_a_broken_module_stops_loading(kit_container: Container, tmp_path: Path) -> None:
    # The kit logs a module that fails to import and loads the others; FrameX stops with
    # the reason (docs/migrating.md, "Where FrameX answers differently").
    folder = tmp_path / "kit_folder_with_broken"
    folder.mkdir()
    (folder / "fine.py").write_text(
        'from framex.plugin import PluginMetadata\n__plugin_meta__ = PluginMetadata(name="f")\n'
    )
    (folder / "broken.py").write_text('raise RuntimeError("cannot reach the store.")\n')
    message = (
        "Plugin `kit_folder_with_broken.broken` failed to import: RuntimeError: cannot reach the store. "
        "Fix the error in `kit_folder_with_broken.broken`."
    )
    with pytest.raises(ImportError) as caught:
        framex.load_plugins(str(folder))
    assert str(caught.value) == message
    assert kit_container.registry().plugins == {}


def test_a_plugin_folder_wins_over_a_package_of_the_same_name(
    kit_container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A kit project's `plugins/` folder has no `__init__.py`; a regular package called
    # `plugins` elsewhere on sys.path would otherwise be imported instead.
    other = tmp_path / "site" / "kit_shadowed"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("")
    folder = tmp_path / "project" / "kit_shadowed"
    folder.mkdir(parents=True)
    (folder / "kit_inside.py").write_text(
        'from framex.plugin import PluginMetadata\n__plugin_meta__ = PluginMetadata(name="inside")\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.chdir(tmp_path / "project")
    try:
        [plugin] = framex.load_plugins(str(folder))
        assert plugin.name == "kit_inside" and plugin.module.__file__ == str(folder / "kit_inside.py")
    finally:
        for name in ("kit_shadowed", "kit_shadowed.kit_inside"):
            sys.modules.pop(name, None)


def test_the_plugin_class_check_health_is_found_for_ray_replicas(kit_container: Container) -> None:
    # Ray Serve replicas call it (framex.adapters.ray_serve.PluginReplica.check_health).
    from framex.kit import health_check_of

    framex.load_builtin_plugins("echo")
    framex.load_plugins("tests.kit.plugins.kit_stream")
    runtime = kit_container.runtime()
    runtime.instantiate()
    [(cls, _)] = runtime.registry.plugins["kit_stream"].classes
    check = health_check_of(runtime, "kit_stream", cls)
    assert check is not None and check.__self__.__class__ is cls  # type: ignore[attr-defined]
    assert check() is None
