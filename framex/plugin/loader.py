"""Importing plugin modules and reading their declarations into :class:`Plugin` records."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from framex.consts import API_STR
from framex.errors import PluginDefinitionError, PluginLoadError
from framex.plugin.decorators import API_ATTR, REGISTER_ATTR, ApiSpec, RegisterSpec
from framex.plugin.fspath import is_path, module_name_for
from framex.plugin.metadata import ApiType, PluginMetadata

BUILTIN_PACKAGE = "framex.builtins"


def full_path(path: str, api_prefix: bool = True) -> str:
    """``/echo`` -> ``/api/v1/echo``; paths already under ``/api/v1`` stay as they are."""
    if not api_prefix or path == API_STR or path.startswith(API_STR + "/"):
        return path
    return API_STR + path


@dataclass(eq=False)
class PluginApi:
    """One API of one plugin, as declared (the handler is bound later, per container)."""

    plugin: str
    name: str
    """The function API name: ``<plugin>.<Class>.<method>`` or ``<plugin>.<function>``."""
    spec: ApiSpec
    func: Callable[..., Any]
    owner: type | None
    signature: inspect.Signature
    """The handler's parameters without ``self``, annotations resolved."""
    return_type: Any
    model_params: dict[str, type[BaseModel]]

    @property
    def path(self) -> str | None:
        return full_path(self.spec.path, self.spec.api_prefix) if self.spec.path else None

    @property
    def is_http(self) -> bool:
        return self.spec.call_type is not ApiType.FUNC

    @property
    def is_func(self) -> bool:
        return self.spec.call_type is not ApiType.HTTP

    @property
    def label(self) -> str:
        """How messages name this API."""
        return self.path or self.name


@dataclass(eq=False)
class ExternalApi(PluginApi):
    """An API served elsewhere and reached through a plugin (found when it starts, e.g. on an upstream service).

    ``func`` makes the call for ``call_plugin_api``; ``route`` is the ASGI app serving its
    path here, and ``operation`` / ``schemas`` its OpenAPI operation and the component
    schemas that operation refers to.
    """

    route: Any = None
    operation: dict[str, Any] = field(default_factory=dict)
    schemas: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    """Where it is served (an upstream URL), for messages and the OpenAPI document."""


@dataclass(eq=False)
class Plugin:
    """A loaded plugin module and what it declares."""

    name: str
    module: ModuleType
    metadata: PluginMetadata
    classes: list[tuple[type, RegisterSpec]] = field(default_factory=list)
    apis: list[PluginApi] = field(default_factory=list)

    @property
    def required_remote_apis(self) -> list[str]:
        return [full_path(a) if a.startswith("/") else a for a in self.metadata.required_remote_apis]


def expand(path: str) -> Iterator[ModuleType]:
    """Import ``path`` and yield the plugin modules it names.

    A module (or package) with ``__plugin_meta__`` is one plugin. A package without it is
    a collection: each of its public submodules that defines ``__plugin_meta__`` is one.
    """
    if is_path(path):
        path = module_name_for(path)
    module = _import(path, path)
    if hasattr(module, "__plugin_meta__"):
        yield module
        return
    if not hasattr(module, "__path__"):
        raise PluginLoadError(
            f"Module `{path}` is not a plugin: it has no `__plugin_meta__`. Add "
            f'`__plugin_meta__ = PluginMetadata(name="...")` to it, or remove it from `load_plugins`.'
        )
    found = False
    for info in sorted(pkgutil.iter_modules(module.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        sub = _import(f"{path}.{info.name}", f"{path}.{info.name}")
        if hasattr(sub, "__plugin_meta__"):
            found = True
            yield sub
    if not found:
        raise PluginLoadError(
            f"Package `{path}` holds no plugin: none of its modules defines `__plugin_meta__`. "
            "Check the path in `load_plugins`."
        )


def _import(module_name: str, plugin: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise PluginLoadError(
                f"Plugin `{plugin}` was not found: no module named `{exc.name}`. Check the name in "
                "`load_plugins` and that its folder is importable (run from the project root)."
            ) from exc
        raise PluginLoadError(f"Plugin `{plugin}` failed to import: {_sentence(exc)}") from exc
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise PluginLoadError(
            f"Plugin `{plugin}` failed to import: {type(exc).__name__}: {_sentence(exc)} "
            f"Fix the error in `{module_name}`."
        ) from exc


def _sentence(exc: BaseException) -> str:
    """An exception's text ending in exactly one full stop."""
    return str(exc).rstrip().rstrip(".") + "."


def read_plugin(module: ModuleType) -> Plugin:
    """Build the :class:`Plugin` record of an imported plugin module."""
    name = module.__name__.rsplit(".", 1)[-1]
    meta = getattr(module, "__plugin_meta__", None)
    if not isinstance(meta, PluginMetadata):
        raise PluginLoadError(
            f"Plugin `{name}` (`{module.__name__}`): `__plugin_meta__` must be a PluginMetadata, "
            f"not {type(meta).__name__}."
        )
    plugin = Plugin(name=name, module=module, metadata=meta)
    prefix = module.__name__ + "."
    for obj in list(vars(module).values()):
        home = getattr(obj, "__module__", None)
        if not isinstance(home, str) or not (home == module.__name__ or home.startswith(prefix)):
            continue
        if isinstance(obj, type) and isinstance(obj.__dict__.get(REGISTER_ATTR), RegisterSpec):
            plugin.classes.append((obj, obj.__dict__[REGISTER_ATTR]))
            for attr, func in _class_handlers(obj):
                plugin.apis.append(_make_api(plugin.name, f"{plugin.name}.{obj.__name__}.{attr}", func, obj))
        elif inspect.isfunction(obj) and isinstance(getattr(obj, API_ATTR, None), ApiSpec):
            plugin.apis.append(_make_api(plugin.name, f"{plugin.name}.{obj.__name__}", obj, None))
    return plugin


def _class_handlers(cls: type) -> Iterator[tuple[str, Callable[..., Any]]]:
    seen: set[str] = set()
    for klass in cls.__mro__:
        for attr, value in vars(klass).items():
            if attr in seen:
                continue
            seen.add(attr)
            if inspect.isfunction(value) and isinstance(getattr(value, API_ATTR, None), ApiSpec):
                yield attr, value


def _make_api(plugin: str, name: str, func: Callable[..., Any], owner: type | None) -> PluginApi:
    spec: ApiSpec = getattr(func, API_ATTR)
    where = f"`{name}` in plugin `{plugin}`"
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:
        raise PluginDefinitionError(f"Cannot resolve the type annotations of {where}: {exc}.") from exc
    sig = inspect.signature(func)
    params = list(sig.parameters.values())
    if owner is not None:
        if not params:
            raise PluginDefinitionError(f"{where} is a method and must take `self`.")
        params = params[1:]
    resolved = []
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise PluginDefinitionError(
                f"{where} takes `{p}`; API handlers take named parameters only, so they can be "
                "documented and validated."
            )
        resolved.append(p.replace(annotation=hints.get(p.name, p.annotation), kind=p.KEYWORD_ONLY))
    models = {
        p.name: p.annotation for p in resolved if isinstance(p.annotation, type) and issubclass(p.annotation, BaseModel)
    }
    if len(models) > 1:
        raise PluginDefinitionError(
            f"{where} takes {len(models)} pydantic model parameters ({', '.join(models)}); an API "
            "takes at most one (the JSON body). Merge them into one model."
        )
    return PluginApi(
        plugin=plugin,
        name=name,
        spec=spec,
        func=func,
        owner=owner,
        signature=inspect.Signature(resolved),
        return_type=hints.get("return", Any),
        model_params=models,
    )
