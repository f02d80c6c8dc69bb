"""What one container has loaded: its plugins, their APIs and routes, and APIs found elsewhere.

Running them (instances, ``on_start``, calls) is :class:`framex.plugin.runtime.PluginRuntime`'s.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable
from typing import Any

from framex.config import Settings, validate_plugin_config
from framex.errors import ApiNotDeclaredError, ApiNotFoundError, FrameXError, PluginDefinitionError, PluginLoadError
from framex.plugin.loader import BUILTIN_PACKAGE, ExternalApi, Plugin, PluginApi, expand, full_path, read_plugin

logger = logging.getLogger("framex.plugin")


class PluginRegistry:
    """Every plugin loaded into one container, their APIs and their instances."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.plugins: dict[str, Plugin] = {}
        self._by_name: dict[str, PluginApi] = {}
        self._by_path: dict[str, list[PluginApi]] = {}
        self._routes: dict[tuple[str, str], PluginApi] = {}
        self._configured = False
        self._frozen = False
        self.external_apis: list[ExternalApi] = []
        self._external_listeners: list[Callable[[ExternalApi], None]] = []
        self._load_listeners: list[Callable[[list[Plugin]], None]] = []

    # -- loading ------------------------------------------------------------------

    def load(self, *paths: str) -> list[Plugin]:
        """Load plugins from dotted module or package paths; return the new ones."""
        if self._frozen:
            raise FrameXError(
                f"Cannot load {', '.join(map(repr, paths))}: the app of this container is already built. "
                "Load plugins before `create_app()` (or list them in `load_plugins`)."
            )
        added: list[Plugin] = []
        for path in paths:
            for module in expand(path):
                if any(p.module is module for p in self.plugins.values()):
                    continue
                plugin = read_plugin(module)
                self._add(plugin)
                added.append(plugin)
        if added:
            for listener in self._load_listeners:
                listener(added)
        return added

    def on_load(self, listener: Callable[[list[Plugin]], None]) -> None:
        """Call ``listener`` with the plugins of every later :meth:`load` that adds some."""
        self._load_listeners.append(listener)

    def load_builtin(self, *names: str) -> list[Plugin]:
        """Load built-in plugins (``echo``, ...) by name."""
        added = []
        for name in names:
            try:
                added += self.load(f"{BUILTIN_PACKAGE}.{name}")
            except PluginLoadError as exc:
                if isinstance(exc.__cause__, ModuleNotFoundError):
                    raise PluginLoadError(f"There is no built-in plugin `{name}`.") from exc
                raise
        return added

    def load_configured(self) -> None:
        """Load what the settings list (``load_builtin_plugins`` then ``load_plugins``), once."""
        if self._configured:
            return
        self.load_builtin(*self.settings.load_builtin_plugins)
        self.load(*self.settings.load_plugins)
        self._configured = True

    def _add(self, plugin: Plugin) -> None:
        if (other := self.plugins.get(plugin.name)) is not None:
            raise PluginLoadError(
                f"Plugin `{plugin.name}` is already loaded from `{other.module.__name__}`; "
                f"`{plugin.module.__name__}` has the same name. Rename one of the modules."
            )
        routes: dict[tuple[str, str], PluginApi] = {}
        for api in plugin.apis:
            if api.is_http and api.path is not None:
                for method in api.spec.methods:
                    key = (method, api.path)
                    clash = self._routes.get(key) or routes.get(key)
                    if clash is not None:
                        raise PluginDefinitionError(
                            f"`{method} {api.path}` is declared twice: by `{clash.name}` and by `{api.name}`. "
                            "Give one of them another path or method."
                        )
                    routes[key] = api
        self.config_of(plugin)  # invalid plugin config stops loading, not the first request
        self.plugins[plugin.name] = plugin
        self._routes.update(routes)
        for api in plugin.apis:
            self._by_name[api.name] = api
            if api.is_http and api.path is not None:
                self._by_path.setdefault(api.path, []).append(api)
        logger.debug("loaded plugin %s with %d API(s)", plugin.name, len(plugin.apis))

    def config_of(self, plugin: Plugin) -> Any:
        """The plugin's typed configuration, or None when it declares no ``config_class``."""
        model = plugin.metadata.config_class
        if model is None:
            return None
        return validate_plugin_config(plugin.name, self.settings.plugins.get(plugin.name), model)

    def freeze(self) -> None:
        """Forbid further loading: an app now serves exactly these plugins."""
        self._frozen = True

    def check_requirements(self, final: bool = False) -> None:
        """Fail when a plugin requires an API that no loaded plugin provides.

        HTTP paths may be added by plugins that discover APIs when they start: with one
        loaded, those are only checked when ``final`` (after it has started).
        """
        discovering = self.discovering
        pending = bool(discovering) and not final
        for plugin in self.plugins.values():
            for wanted in plugin.required_remote_apis:
                if wanted in self._by_name or wanted in self._by_path or (pending and wanted.startswith("/")):
                    continue
                names = ", ".join(f"`{p.name}`" for p in discovering)
                where = f" and no API found by {names} serves it" if discovering else ""
                raise ApiNotFoundError(
                    f"Plugin `{plugin.name}` requires API `{wanted}` (in `required_remote_apis`), but no "
                    f"loaded plugin provides it{where}.{self._suggest(wanted)} Load the plugin that serves it."
                )

    @property
    def discovering(self) -> list[Plugin]:
        """The loaded plugins that add APIs when they start (``PluginMetadata.discovers_apis``)."""
        return [p for p in self.plugins.values() if p.metadata.discovers_apis]

    def add_external_api(self, api: ExternalApi) -> None:
        """Make an API served elsewhere callable by its path (and routed, by the app's listener)."""
        assert api.path is not None
        for method in api.spec.methods:
            if self.serves(method, api.path):
                raise FrameXError(f"`{method} {api.path}` is served already; an external API cannot replace it.")
        self._by_name[api.name] = api
        self._by_path.setdefault(api.path, []).append(api)
        self.external_apis.append(api)
        for listener in self._external_listeners:
            listener(api)

    def serves(self, method: str, path: str) -> bool:
        """Whether ``method path`` is served already (by a plugin or an external API)."""
        if (method, path) in self._routes:
            return True
        return any(method in api.spec.methods for api in self._by_path.get(path, ()))

    def on_external_api(self, listener: Callable[[ExternalApi], None]) -> None:
        """Call ``listener`` with every external API, those added so far included."""
        self._external_listeners.append(listener)
        for api in self.external_apis:
            listener(api)

    # -- lookup -------------------------------------------------------------------

    @property
    def apis(self) -> list[PluginApi]:
        return [api for plugin in self.plugins.values() for api in plugin.apis]

    def get_api(self, name: str) -> PluginApi:
        """Find an API by function name (``echo.EchoPlugin.confess``) or HTTP path."""
        api = self._by_name.get(name)
        if api is not None:
            return api
        candidates = self._by_path.get(full_path(name)) if name.startswith("/") else None
        if not candidates:
            raise ApiNotFoundError(
                f"No loaded plugin provides API `{name}`.{self._suggest(name)} Check the name and that "
                "its plugin is loaded."
            )
        if len(candidates) > 1:
            listed = ", ".join(f"{'/'.join(a.spec.methods)}: `{a.name}`" for a in candidates)
            raise ApiNotFoundError(f"`{name}` is served by several handlers ({listed}); call one by its function name.")
        return candidates[0]

    def _suggest(self, name: str) -> str:
        close = difflib.get_close_matches(name, [*self._by_name, *self._by_path], n=3)
        return f" Did you mean {', '.join(f'`{c}`' for c in close)}?" if close else ""

    def check_declared(self, caller: Plugin | None, api: PluginApi, requested: str) -> None:
        """Raise when ``caller`` calls another plugin's API it did not declare."""
        if caller is None or caller.name == api.plugin:
            return
        declared = caller.required_remote_apis
        if api.name in declared or (api.path is not None and api.path in declared):
            return
        raise ApiNotDeclaredError(
            f"Plugin `{caller.name}` called `{requested}` without declaring it. Add `{api.label}` to "
            f"`required_remote_apis` in its `__plugin_meta__`."
        )
