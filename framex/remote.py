"""``@remote()``: one call form, ``await f.remote(...)``, whatever backend runs the work.

The backend (adapter) is looked up in the active container at every call, so
overriding ``container.adapter`` takes effect on the next call without re-decorating.
Shapes are told apart with the descriptor protocol: a plain function, a method bound
to an instance, a classmethod (``@classmethod`` above or below ``@remote()``) and a
staticmethod all work; ``f(...)`` stays a plain direct call.
"""

from __future__ import annotations

import functools
import inspect
import sys
import warnings
from collections.abc import Callable
from typing import Any, Generic, Literal, ParamSpec, TypeVar, overload

P = ParamSpec("P")
R = TypeVar("R")

Kind = Literal["function", "classmethod", "staticmethod"]


class RemoteFunction(Generic[P, R]):
    """A function that can be called directly or with ``await f.remote(...)``."""

    def __init__(self, func: Callable[P, R], kind: Kind = "function") -> None:
        self.func = func
        self.kind: Kind = kind
        self.is_async = inspect.iscoroutinefunction(func)
        functools.update_wrapper(self, func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    async def remote(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Run the function through the active container's adapter and return its result."""
        from framex.container import get_container

        return await get_container().adapter().call(self, args, kwargs)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if self.kind == "staticmethod":
            return self
        if self.kind == "classmethod":
            return BoundRemote(self, owner if owner is not None else type(instance))
        if instance is None:
            return self
        # Also reached through `@classmethod` stacked above `@remote()`: the classmethod
        # hands the class in as `instance`.
        return BoundRemote(self, instance)

    def __repr__(self) -> str:
        return f"<remote {self.kind} {self.func.__qualname__}>"


class BoundRemote:
    """A :class:`RemoteFunction` with its first argument (``self`` or ``cls``) bound."""

    __slots__ = ("__self__", "fn")

    def __init__(self, fn: RemoteFunction[..., Any], bound: Any) -> None:
        self.fn = fn
        self.__self__ = bound

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn.func(self.__self__, *args, **kwargs)

    async def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Run the bound function through the active container's adapter."""
        from framex.container import get_container

        return await get_container().adapter().call(self.fn, (self.__self__, *args), kwargs)

    @property
    def __wrapped__(self) -> Callable[..., Any]:
        return self.fn.func

    def __repr__(self) -> str:
        return f"<bound remote {self.fn.func.__qualname__} of {self.__self__!r}>"


# `@classmethod` above `@remote()` relies on classmethod binding the descriptor it
# wraps, which Python 3.13 removed.
_CLASSMETHOD_CHAINS = sys.version_info < (3, 13)


def _first_parameter(func: Callable[..., Any]) -> str | None:
    try:
        return next(iter(inspect.signature(func).parameters), None)
    except (TypeError, ValueError):
        return None


@overload
def remote(func: Callable[P, R], /) -> RemoteFunction[P, R]: ...


@overload
def remote() -> Callable[[Callable[P, R]], RemoteFunction[P, R]]: ...


def remote(func: Any = None, /) -> Any:
    """Put a function behind the execution boundary: ``await f.remote(...)``.

    Usable as ``@remote()`` or ``@remote`` on functions, methods, classmethods and
    staticmethods, sync or async.
    """

    def decorate(target: Any) -> RemoteFunction[Any, Any]:
        if isinstance(target, RemoteFunction):
            return target
        if isinstance(target, classmethod):
            return RemoteFunction(target.__func__, "classmethod")
        if isinstance(target, staticmethod):
            return RemoteFunction(target.__func__, "staticmethod")
        if not callable(target):
            raise TypeError(f"@remote() decorates a function or method, not {type(target).__name__}.")
        if not _CLASSMETHOD_CHAINS and _first_parameter(target) == "cls":
            warnings.warn(
                f"`{target.__qualname__}`: on Python 3.13+ `@classmethod` above `@remote()` no longer passes "
                "`cls` to `.remote()`; put `@remote()` above `@classmethod`.",
                stacklevel=3,
            )
        return RemoteFunction(target)

    if func is None:
        return decorate
    return decorate(func)
