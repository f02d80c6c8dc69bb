"""``@remote()``: one call form, ``await f.remote(...)``, whatever backend runs the work.

The backend (adapter) is looked up in the active container (:mod:`framex.context`) at
every call, so overriding ``container.adapter`` takes effect on the next call without
re-decorating.
Shapes are told apart with the descriptor protocol: a plain function, a method bound
to an instance, a classmethod (``@classmethod`` above or below ``@remote()``) and a
staticmethod all work; ``f(...)`` stays a plain direct call.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import sys
import time
import warnings
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar, overload

from framex.batching import BatchObserver, batched_call, batched_map, check_batchable
from framex.context import get_container
from framex.deadlines import within
from framex.remote_options import DEFAULT_OPTIONS, Executor, RemoteOptions
from framex.remote_options import OPTION_NAMES as _OPTION_NAMES
from framex.remote_spans import remote_span, traced_items

if TYPE_CHECKING:
    from framex.adapters.base import Adapter
    from framex.tracing import Tracing

P = ParamSpec("P")
R = TypeVar("R")

Kind = Literal["function", "classmethod", "staticmethod"]

logger = logging.getLogger("framex.remote")


class _Callable:
    """What ``RemoteFunction`` and ``BoundRemote`` share: ``remote``, ``map`` and ``starmap``."""

    def _target(self) -> tuple[RemoteFunction[..., Any], tuple[Any, ...]]:
        raise NotImplementedError

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Run through the active container's adapter.

        Returns an awaitable of the result, or, for a generator function, an async
        iterator of its items.
        """
        fn, bound = self._target()
        if fn.opts.batch_size is not None:
            if len(args) != 1:
                raise TypeError(
                    f"`{fn.func.__qualname__}` is batched: call `.remote(item, **kwargs)` with one item; "
                    f"got {len(args)} positional arguments."
                )
            return batched_call(fn, bound, args[0], kwargs, _with_retries)
        if bound:
            args = (*bound, *args)
        if fn.is_generator:
            return _stream(fn, args, kwargs)
        return _call(fn, args, kwargs)

    async def map(
        self, items: Iterable[Any], concurrency: int | None = None, return_exceptions: bool = False
    ) -> list[Any]:
        """``.remote(item)`` for every item (at most ``concurrency`` at once); results in input order."""
        return await self.starmap(((item,) for item in items), concurrency, return_exceptions)

    async def starmap(
        self, arg_tuples: Iterable[Iterable[Any]], concurrency: int | None = None, return_exceptions: bool = False
    ) -> list[Any]:
        """``.remote(*args)`` for every tuple of arguments; results in input order."""
        fn, bound = self._target()
        if fn.is_generator:
            raise TypeError(
                f"`{fn.func.__qualname__}` is a generator function: iterate `.remote(...)` instead of mapping."
            )
        if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
            raise ValueError(f"map(concurrency={concurrency!r}): give a whole number >= 1, or None.")
        if fn.opts.batch_size is not None:
            items = [_one_item(fn, tuple(args)) for args in arg_tuples]
            return await batched_map(fn, bound, items, concurrency, return_exceptions, _with_retries)
        calls = [(*bound, *args) for args in arg_tuples]
        if concurrency is None or concurrency >= len(calls):
            if fn.opts is DEFAULT_OPTIONS:
                container = get_container()
                adapter: Adapter = container.adapter()
                observers: CallObservers = container.call_observers()
                if observers.idle:
                    return list(await adapter.call_many(fn, calls, return_exceptions))
                if observers.tracing is None:
                    return await _observed_many(observers, fn, adapter, calls, return_exceptions)
                with observers.tracing.span(*remote_span(fn, adapter, **{"framex.calls": len(calls)})):
                    return await _observed_many(observers, fn, adapter, calls, return_exceptions)
            return await asyncio.gather(*(_call(fn, a, {}) for a in calls), return_exceptions=return_exceptions)
        return await _bounded(fn, calls, concurrency, return_exceptions)


def _one_item(fn: RemoteFunction[..., Any], args: tuple[Any, ...]) -> Any:
    if len(args) != 1:
        raise TypeError(f"`{fn.func.__qualname__}` is batched: map over single items, not {len(args)}-tuples.")
    return args[0]


class RemoteFunction(_Callable, Generic[P, R]):
    """A function that can be called directly or with ``await f.remote(...)``."""

    def __init__(self, func: Callable[P, R], kind: Kind = "function", options: RemoteOptions = DEFAULT_OPTIONS) -> None:
        self.func = func
        self.kind: Kind = kind
        self.opts = options
        self.is_async = inspect.iscoroutinefunction(func)
        self.is_async_gen = inspect.isasyncgenfunction(func)
        self.is_generator = self.is_async_gen or inspect.isgeneratorfunction(func)
        self._limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._warned = False
        functools.update_wrapper(self, func)
        if self.is_generator and (options.timeout is not None or options.retries):
            raise ValueError(
                f"`{func.__qualname__}` is a generator function: `timeout` and `retries` apply to calls, not to "
                "streams. Bound the consumer instead (e.g. `asyncio.timeout`)."
            )
        self.batch_key: Any = None
        """What batches calls together: the function and its options but the caller's own ``timeout``."""
        if options.batch_size is not None:
            check_batchable(func, kind, self.is_generator)
            self.batch_key = (func, replace(options, timeout=None))
        if options.executor == "process":
            if self.is_generator:
                raise ValueError(
                    f"`{func.__qualname__}`: generator functions cannot run on the process executor; "
                    "use threads or Ray."
                )
            if "<locals>" in func.__qualname__:
                raise ValueError(
                    f"`{func.__qualname__}`: `executor='process'` needs a function a worker process can import; "
                    "define it at module level (or in a class at module level)."
                )

    def _target(self) -> tuple[RemoteFunction[..., Any], tuple[Any, ...]]:
        return self, ()

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def options(self, **overrides: Any) -> RemoteFunction[P, R]:
        """A copy with some options changed, for the calls made through it."""
        unknown = sorted(set(overrides) - _OPTION_NAMES)
        if unknown:
            raise TypeError(
                f"options(): unknown option(s) {', '.join(unknown)}; use {', '.join(sorted(_OPTION_NAMES))}."
            )
        return RemoteFunction(self.func, self.kind, replace(self.opts, **overrides))

    def limit(self) -> asyncio.Semaphore | None:
        """This function's ``max_concurrency`` gate on the running loop."""
        if self.opts.max_concurrency is None:
            return None
        loop = asyncio.get_running_loop()
        gate = self._limits.get(loop)
        if gate is None:
            gate = self._limits[loop] = asyncio.Semaphore(self.opts.max_concurrency)
        return gate

    def warn_once(self, message: str) -> None:
        """Log ``message`` the first time only (per function)."""
        if not self._warned:
            self._warned = True
            logger.warning(message)

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


class BoundRemote(_Callable):
    """A :class:`RemoteFunction` with its first argument (``self`` or ``cls``) bound."""

    __slots__ = ("__self__", "fn")

    def __init__(self, fn: RemoteFunction[..., Any], bound: Any) -> None:
        self.fn = fn
        self.__self__ = bound

    def _target(self) -> tuple[RemoteFunction[..., Any], tuple[Any, ...]]:
        return self.fn, (self.__self__,)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn.func(self.__self__, *args, **kwargs)

    def options(self, **overrides: Any) -> BoundRemote:
        """A copy with some options changed, still bound."""
        return BoundRemote(self.fn.options(**overrides), self.__self__)

    @property
    def __wrapped__(self) -> Callable[..., Any]:
        return self.fn.func

    def __repr__(self) -> str:
        return f"<bound remote {self.fn.func.__qualname__} of {self.__self__!r}>"


CallObserver = Callable[["RemoteFunction[..., Any]", str, float, BaseException | None], None]
"""``observer(fn, backend, seconds, error)``: told about every finished ``.remote()`` call."""


class CallObservers:
    """Who hears of ``.remote()`` and plugin calls in one service: a container provider
    (``call_observers``), never None, so the lookup on every call stays one cached object."""

    __slots__ = ("batch", "idle", "observer", "tracing")

    def __init__(
        self, observer: CallObserver | None = None, batch: BatchObserver | None = None, tracing: Tracing | None = None
    ) -> None:
        self.observer = observer
        """Metrics' counter, or None: nothing is timed."""
        self.batch = batch
        """Told the size and the wait of every batch that starts (metrics' histograms), or None."""
        self.tracing = tracing
        """The service's tracing, or None: no spans."""
        self.idle = observer is None and tracing is None
        """Nobody observes calls: ``.remote()`` takes its shortest path."""


async def _call(fn: RemoteFunction[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    container = get_container()
    adapter: Adapter = container.adapter()
    observers: CallObservers = container.call_observers()
    if observers.idle:
        return await _gated(fn, adapter, args, kwargs)
    tracing = observers.tracing
    if tracing is None or tracing.unsampled():  # (in a trace that is not recorded: no span)
        return await _observed(observers, fn, adapter, args, kwargs)
    with tracing.span(*remote_span(fn, adapter)):
        return await _observed(observers, fn, adapter, args, kwargs)


def _observed(
    observers: CallObservers,
    fn: RemoteFunction[..., Any],
    adapter: Adapter,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Awaitable[Any]:
    # Plain functions down to the adapter's call when nothing times it: no coroutine of
    # their own per call.
    if observers.observer is None:
        return _gated(fn, adapter, args, kwargs)
    return _timed(observers.observer, fn, adapter, args, kwargs)


async def _timed(
    observer: CallObserver,
    fn: RemoteFunction[..., Any],
    adapter: Adapter,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    start = time.perf_counter()
    try:
        result = await _gated(fn, adapter, args, kwargs)
    except Exception as exc:
        observer(fn, adapter.name, time.perf_counter() - start, exc)
        raise
    observer(fn, adapter.name, time.perf_counter() - start, None)
    return result


def _gated(
    fn: RemoteFunction[..., Any], adapter: Adapter, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Awaitable[Any]:
    if fn.opts is DEFAULT_OPTIONS:  # the common case: no gate, no clock, no retry loop
        return adapter.call(fn, args, kwargs)
    return _limited(fn, adapter, args, kwargs)


async def _limited(
    fn: RemoteFunction[..., Any], adapter: Adapter, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    gate = fn.limit()
    if gate is None:
        return await _with_deadline(fn, adapter, args, kwargs)
    async with gate:
        return await _with_deadline(fn, adapter, args, kwargs)


async def _observed_many(
    observers: CallObservers,
    fn: RemoteFunction[..., Any],
    adapter: Adapter,
    calls: list[tuple[Any, ...]],
    return_exceptions: bool,
) -> list[Any]:
    # One fan-out in one adapter call: its items run together, so each is counted with
    # the fan-out's time; when it raises, every item counts as failed (the caller gets
    # no result of any).
    observer = observers.observer
    if observer is None:
        return list(await adapter.call_many(fn, calls, return_exceptions))
    start = time.perf_counter()
    try:
        results = list(await adapter.call_many(fn, calls, return_exceptions))
    except Exception as exc:
        seconds = time.perf_counter() - start
        for _ in calls:
            observer(fn, adapter.name, seconds, exc)
        raise
    seconds = time.perf_counter() - start
    for result in results:
        observer(fn, adapter.name, seconds, result if return_exceptions and isinstance(result, Exception) else None)
    return results


async def _with_deadline(
    fn: RemoteFunction[..., Any], adapter: Adapter, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    timeout = fn.opts.timeout
    if timeout is None:
        return await _with_retries(fn, adapter, args, kwargs)
    return await within(
        timeout,
        _with_retries(fn, adapter, args, kwargs),
        lambda: (
            f"`{fn.func.__qualname__}` did not finish within {timeout} s (on the {adapter.name} backend); "
            "raise `timeout` or make the work smaller."
        ),
    )


async def _with_retries(
    fn: RemoteFunction[..., Any], adapter: Adapter, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    options = fn.opts
    # Ray re-runs failed tasks itself (see the Ray adapter); other backends retry here.
    attempts = 1 if adapter.retries_tasks else options.retries + 1
    for attempt in range(1, attempts + 1):
        try:
            return await adapter.call(fn, args, kwargs)
        except options.retry_on as exc:
            if attempt == attempts:
                raise
            logger.info(
                "`%s` raised %s; attempt %d of %d", fn.func.__qualname__, type(exc).__name__, attempt + 1, attempts
            )
    raise AssertionError("unreachable")  # pragma: no cover


async def _bounded(
    fn: RemoteFunction[..., Any], calls: list[tuple[Any, ...]], concurrency: int, return_exceptions: bool
) -> list[Any]:
    # A fixed set of workers pulling the next index: no task or gate per item.
    results: list[Any] = [None] * len(calls)
    positions = iter(range(len(calls)))

    async def worker() -> None:
        for i in positions:
            try:
                results[i] = await _call(fn, calls[i], {})
            except Exception as exc:
                if not return_exceptions:
                    raise
                results[i] = exc

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


async def _stream(fn: RemoteFunction[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> AsyncIterator[Any]:
    container = get_container()
    adapter: Adapter = container.adapter()
    tracing = container.call_observers().tracing
    gate = fn.limit()
    if gate is not None:
        await gate.acquire()
    items = adapter.stream(fn, args, kwargs)
    try:
        if tracing is None:
            async for item in items:
                yield item
        else:
            async for item in traced_items(tracing, fn, adapter, items):
                yield item
    finally:
        try:
            await items.aclose()
        finally:
            if gate is not None:
                gate.release()


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
def remote(
    *,
    timeout: float | None = None,
    retries: int = 0,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
    max_concurrency: int | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    resources: Mapping[str, float] | None = None,
    executor: Executor | None = None,
    batch_size: int | None = None,
    batch_wait_ms: float = 0,
) -> Callable[[Callable[P, R]], RemoteFunction[P, R]]: ...


def remote(func: Any = None, /, **options: Any) -> Any:
    """Put a function behind the execution boundary: ``await f.remote(...)``.

    Usable as ``@remote()``, ``@remote`` or ``@remote(timeout=..., ...)`` on functions,
    methods, classmethods and staticmethods, sync or async, generators included (then
    ``f.remote(...)`` is an async iterator). Options are checked here, so a bad one
    fails at import rather than at the first call.
    """
    unknown = sorted(set(options) - _OPTION_NAMES)
    if unknown:
        raise TypeError(f"@remote(): unknown option(s) {', '.join(unknown)}; use {', '.join(sorted(_OPTION_NAMES))}.")
    settings = RemoteOptions(**options) if options else DEFAULT_OPTIONS

    def decorate(target: Any) -> RemoteFunction[Any, Any]:
        if isinstance(target, RemoteFunction):
            return target if not options else RemoteFunction(target.func, target.kind, settings)
        if isinstance(target, classmethod):
            return RemoteFunction(target.__func__, "classmethod", settings)
        if isinstance(target, staticmethod):
            return RemoteFunction(target.__func__, "staticmethod", settings)
        if not callable(target):
            raise TypeError(f"@remote() decorates a function or method, not {type(target).__name__}.")
        if not _CLASSMETHOD_CHAINS and _first_parameter(target) == "cls":
            warnings.warn(
                f"`{target.__qualname__}`: on Python 3.13+ `@classmethod` above `@remote()` no longer passes "
                "`cls` to `.remote()`; put `@remote()` above `@classmethod`.",
                stacklevel=3,
            )
        return RemoteFunction(target, "function", settings)

    if func is None:
        return decorate
    return decorate(func)
