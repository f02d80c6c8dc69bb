"""What the console lists without counting anything: each plugin's metadata, APIs and
``@remote`` functions.

``@remote`` functions are found in the plugin's modules (its module, and its submodules for
a package): module-level functions and the methods of classes defined there, under the name
the metrics give them (``module.qualname``).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from framex.remote import RemoteFunction
from framex.remote_options import DEFAULT_OPTIONS

if TYPE_CHECKING:
    from framex.plugin.loader import Plugin, PluginApi


def metric_label(fn: RemoteFunction[..., Any]) -> str:
    """The ``function`` label the metrics give ``fn``'s calls."""
    return f"{fn.func.__module__}.{fn.func.__qualname__}"


def describe_plugin(plugin: Plugin) -> dict[str, Any]:
    """The plugin's metadata, as the console shows it."""
    meta = plugin.metadata
    return {
        "name": plugin.name,
        "title": meta.name,
        "module": plugin.module.__name__,
        "version": meta.version,
        "description": meta.description,
        "author": meta.author,
        "url": meta.url,
        "tags": list(meta.tags),
    }


def describe_api(api: PluginApi) -> dict[str, Any]:
    """One API: its function name, HTTP path and methods, how it is called, its summary."""
    doc = inspect.getdoc(api.func) or ""
    return {
        "name": api.name,
        "path": api.path if api.is_http else None,
        "methods": list(api.spec.methods) if api.is_http else [],
        "call_type": api.spec.call_type.value,
        "stream": api.spec.stream,
        "summary": doc.split("\n\n", 1)[0].replace("\n", " "),
    }


def describe_remote(fn: RemoteFunction[..., Any], kind: str | None = None) -> dict[str, Any]:
    """One ``@remote`` function: its metrics label, kind (``kind`` when a wrapper says more) and
    the options that differ from the defaults."""
    options = {
        name: value
        for name in ("timeout", "retries", "max_concurrency", "executor", "num_cpus", "num_gpus", "batch_size")
        if (value := getattr(fn.opts, name)) != getattr(DEFAULT_OPTIONS, name)
    }
    return {
        "name": metric_label(fn),
        "qualname": fn.func.__qualname__,
        "kind": kind or fn.kind,
        "async": fn.is_async or fn.is_async_gen,
        "generator": fn.is_generator,
        "options": options,
    }


def remote_functions(plugin: Plugin) -> list[tuple[RemoteFunction[..., Any], str]]:
    """The ``@remote`` functions defined in the plugin's modules, with their kind, in the order they are found."""
    prefix = plugin.module.__name__
    found: dict[int, tuple[RemoteFunction[..., Any], str]] = {}
    for name, module in list(sys.modules.items()):
        if module is None or not (name == prefix or name.startswith(prefix + ".")):
            continue
        for obj in list(vars(module).values()):
            for fn, kind in _remotes_in(obj):
                home = fn.func.__module__
                if home == prefix or home.startswith(prefix + "."):
                    found.setdefault(id(fn.func), (fn, kind))
    return list(found.values())


def _remotes_in(obj: object) -> Iterator[tuple[RemoteFunction[..., Any], str]]:
    if isinstance(obj, RemoteFunction):
        yield obj, obj.kind
    elif isinstance(obj, type):
        for attr in list(vars(obj).values()):
            if isinstance(attr, RemoteFunction):
                yield attr, attr.kind if attr.kind != "function" else "method"
            elif isinstance(attr, classmethod | staticmethod) and isinstance(attr.__func__, RemoteFunction):
                # `@classmethod` / `@staticmethod` above `@remote()`: the wrapper tells the kind.
                yield attr.__func__, "classmethod" if isinstance(attr, classmethod) else "staticmethod"
