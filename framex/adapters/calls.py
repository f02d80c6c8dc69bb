"""Running a ``@remote`` function's code in another process (a worker process or a Ray worker)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from framex.adapters.carry import Carried, entered

if TYPE_CHECKING:
    from framex.remote import RemoteFunction

Reference = tuple[str, str]

_thread_loops = threading.local()


def thread_loop() -> asyncio.AbstractEventLoop:
    """An event loop that stays with this (worker) thread across calls."""
    loop: asyncio.AbstractEventLoop | None = getattr(_thread_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = _thread_loops.loop = asyncio.new_event_loop()
    return loop


def run_coroutine_function(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """Run an async function to completion on this thread's loop: no loop set-up per call."""
    return thread_loop().run_until_complete(fn(*args, **kwargs))


def drive_async_generator(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Iterator[Any]:
    """An async generator function's items, as a plain generator (for Ray streaming tasks)."""
    loop = thread_loop()
    agen = fn(*args, **kwargs)
    try:
        while True:
            try:
                item = loop.run_until_complete(agen.__anext__())
            except StopAsyncIteration:
                return
            yield item
    finally:
        loop.run_until_complete(agen.aclose())


def importable(fn: RemoteFunction[..., Any]) -> bool:
    """Whether another process can find ``fn`` by module and name (as this one does)."""
    if fn.func.__module__ == "__main__" or "<locals>" in fn.func.__qualname__:
        return False
    try:
        return resolve(reference(fn)) is fn.func
    except Exception:
        return False


def reference(fn: RemoteFunction[..., Any]) -> Reference:
    """How a worker process finds the function: its module and qualified name."""
    return fn.func.__module__, fn.func.__qualname__


def resolve(ref: Reference) -> Callable[..., Any]:
    """The plain function a :func:`reference` names (``@remote`` and method wrappers removed)."""
    from framex.remote import RemoteFunction

    module_name, qualname = ref
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = inspect.getattr_static(target, part)
        if isinstance(target, (classmethod, staticmethod)):
            target = target.__func__
    if isinstance(target, RemoteFunction):
        target = target.func
    if not callable(target):
        raise TypeError(f"`{module_name}.{qualname}` is not callable in the worker process.")
    return target  # type: ignore[no-any-return]


_resolved: dict[Reference, Callable[..., Any]] = {}


def _lookup(ref: Reference) -> Callable[..., Any]:
    func = _resolved.get(ref)
    if func is None:
        func = _resolved[ref] = resolve(ref)
    return func


def call_by_reference(ref: Reference, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """Entry point in a worker process: find the function and run it."""
    func = _lookup(ref)
    if inspect.iscoroutinefunction(func):
        return run_coroutine_function(func, args, kwargs)
    return func(*args, **kwargs)


def stream_by_reference(ref: Reference, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Iterator[Any]:
    """Entry point in a worker process for generator functions: their items."""
    func = _lookup(ref)
    if inspect.isasyncgenfunction(func):
        yield from drive_async_generator(func, args, kwargs)
    else:
        yield from func(*args, **kwargs)


def call_carried(carried: Carried, ref: Reference, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """Entry point in a worker process for a call that carries the caller's request and trace."""
    with entered(carried, ref[1]):
        return call_by_reference(ref, args, kwargs)
