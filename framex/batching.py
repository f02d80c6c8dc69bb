"""``@remote(batch_size=..., batch_wait_ms=...)``: many concurrent calls, one execution.

Callers still call ``await f.remote(item, **kw)``. Concurrent calls of one batched
function are gathered per container (its ``batches`` provider), per bound instance, per
value of the other keyword arguments and per event loop, until ``batch_size`` items are
waiting or ``batch_wait_ms`` has passed since the first one. Then the function runs once
on the active adapter with the list of items (one thread job, one process job, one Ray
task), and each caller gets its own item's result. ``batch_wait_ms=0`` runs at once and
gathers what arrives while a batch runs. At most ``max_concurrency`` batches (default 1)
run at once per batcher; the next batch forms meanwhile.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import types
import typing
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from framex.context import get_container
from framex.deadlines import within
from framex.errors import BatchResultError
from framex.remote_spans import remote_span

if TYPE_CHECKING:
    from framex.adapters.base import Adapter
    from framex.container import Container
    from framex.remote import CallObservers, RemoteFunction

RunBatch = Callable[["RemoteFunction[..., Any]", "Adapter", tuple[Any, ...], dict[str, Any]], Any]
"""Runs one batch on an adapter (with the function's retries): ``run(fn, adapter, args, kwargs)``."""
BatchObserver = Callable[["RemoteFunction[..., Any]", str, int, float], None]
"""``observer(fn, backend, size, waited_seconds)``: told about every batch that starts."""

_LIST_ORIGINS = (list, Sequence, Collection, Iterable, typing.Sequence, typing.Collection, typing.Iterable)


def check_batchable(func: Callable[..., Any], kind: str, is_generator: bool) -> None:
    """Raise ``ValueError`` / ``TypeError`` at decoration when ``func`` cannot be batched."""
    name = getattr(func, "__qualname__", repr(func))
    if is_generator:
        raise ValueError(
            f"`{name}`: a generator function cannot be batched (`batch_size`); batch a function that returns a list."
        )
    params = list(inspect.signature(func).parameters.values())
    # A method (a class-body function, or a classmethod) gets `self` / `cls` first.
    if kind == "classmethod" or (kind == "function" and _in_class_body(func)):
        params = params[1:]
    if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        raise TypeError(f"`{name}`: a batched function takes the list of items as its first positional parameter.")
    first = params[0]
    try:
        annotation = typing.get_type_hints(func).get(first.name, first.annotation)
    except Exception:  # an annotation that cannot be resolved here: judged at the first call instead
        return
    if not _holds_a_list(annotation):
        raise TypeError(
            f"`{name}`: the first parameter `{first.name}` is annotated `{annotation!r}`, which cannot hold the "
            "list of items a batch passes. Annotate it `list[...]`."
        )


def _in_class_body(func: Callable[..., Any]) -> bool:
    qualname = getattr(func, "__qualname__", "")
    return "." in qualname and not qualname.endswith(">") and qualname.rsplit(".", 2)[-2] != "<locals>"


def _holds_a_list(annotation: Any) -> bool:
    if annotation is inspect.Parameter.empty or annotation is Any or annotation is object:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return any(_holds_a_list(arg) for arg in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _holds_a_list(typing.get_args(annotation)[0])
    target = origin or annotation
    return isinstance(target, type) and any(target is t or _subclass(list, target) for t in _LIST_ORIGINS)


def _subclass(cls: type, parent: Any) -> bool:
    try:
        return issubclass(cls, parent)
    except TypeError:
        return False


class _Waiting:
    __slots__ = ("future", "item", "since")

    def __init__(self, item: Any, future: asyncio.Future[Any], since: float) -> None:
        self.item = item
        self.future = future
        self.since = since


class Batcher:
    """The calls of one batched function waiting for, or running in, a batch."""

    def __init__(
        self,
        fn: RemoteFunction[..., Any],
        bound: tuple[Any, ...],
        kwargs: dict[str, Any],
        adapter: Callable[[], Adapter],
        run: RunBatch,
        observer: Callable[[], BatchObserver | None],
        on_idle: Callable[[Batcher], None],
    ) -> None:
        self.fn = fn
        self.bound = bound
        self.kwargs = kwargs
        self.size: int = fn.opts.batch_size or 1
        self.wait = (fn.opts.batch_wait_ms or 0) / 1000
        self.limit: int = fn.opts.max_concurrency or 1
        self._adapter = adapter
        self._run = run
        self._observer = observer
        self._on_idle = on_idle
        self._waiting: deque[_Waiting] = deque()
        self._running = 0
        self._timer: asyncio.TimerHandle | None = None

    def submit(self, item: Any) -> asyncio.Future[Any]:
        """Queue ``item``; the future resolves to its result (cancel it to withdraw the item)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append(_Waiting(item, future, time.perf_counter()))
        self._schedule(loop)
        return future

    def _live(self) -> int:
        while self._waiting and self._waiting[0].future.done():
            self._waiting.popleft()  # its caller went away before the batch started
        return sum(1 for w in self._waiting if not w.future.done())

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._running >= self.limit:
            return  # the next batch forms while these run; a finished batch schedules again
        live = self._live()
        if not live:
            self._idle()
            return
        due = self._waiting[0].since + self.wait
        if live >= self.size or self.wait <= 0 or time.perf_counter() >= due:
            self._start(loop)
        elif self._timer is None:
            self._timer = loop.call_at(loop.time() + max(0.0, due - time.perf_counter()), self._due, loop)

    def _due(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._schedule(loop)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch: list[_Waiting] = []
        while self._waiting and len(batch) < self.size:
            waiting = self._waiting.popleft()
            if not waiting.future.done():
                batch.append(waiting)
        self._running += 1
        loop.create_task(self._execute(batch), name=f"framex-batch {self.fn.func.__qualname__}")
        if self._waiting:
            self._schedule(loop)

    async def _execute(self, batch: list[_Waiting]) -> None:
        try:
            adapter = self._adapter()
            observer = self._observer()
            if observer is not None:
                observer(self.fn, adapter.name, len(batch), time.perf_counter() - batch[0].since)
            await run_batch(self.fn, adapter, self._run, self.bound, self.kwargs, batch)
        finally:
            self._running -= 1
            self._schedule(asyncio.get_running_loop())

    def _idle(self) -> None:
        if self._running == 0 and not self._waiting:
            self._on_idle(self)


async def run_batch(
    fn: RemoteFunction[..., Any],
    adapter: Adapter,
    run: RunBatch,
    bound: tuple[Any, ...],
    kwargs: dict[str, Any],
    batch: Sequence[_Waiting],
) -> None:
    """Run one batch and hand each waiting caller its result (or the batch's error)."""
    items = [w.item for w in batch]
    try:
        results = await run(fn, adapter, (*bound, items), kwargs)
        results = checked_results(fn, results, len(items))
    except BaseException as exc:
        for waiting in batch:
            if not waiting.future.done():
                waiting.future.set_exception(exc)
        if not isinstance(exc, Exception):
            raise
        return
    for waiting, result in zip(batch, results, strict=True):
        if waiting.future.done():
            continue  # its caller timed out or went away: the others still get theirs
        if isinstance(result, BaseException):
            waiting.future.set_exception(result)
        else:
            waiting.future.set_result(result)


def checked_results(fn: RemoteFunction[..., Any], results: Any, expected: int) -> list[Any]:
    """The batch's results as a list, or :class:`BatchResultError` naming what is wrong."""
    name = fn.func.__qualname__
    if isinstance(results, (str, bytes, dict)) or not isinstance(results, Sequence):
        raise BatchResultError(
            f"`{name}` is batched and returned {type(results).__name__}, not a list: return one result per item, "
            f"in order ({expected} here)."
        )
    if len(results) != expected:
        raise BatchResultError(
            f"`{name}` returned {len(results)} results for a batch of {expected} items: return one result per item, "
            "in order."
        )
    return list(results)


def kwargs_key(kwargs: dict[str, Any]) -> Any:
    """What tells batches apart: calls with different keyword values never share one."""
    try:
        key = tuple(sorted(kwargs.items()))
        hash(key)
    except TypeError:
        # Unhashable values: equal by identity only (a batch per distinct object).
        return tuple(sorted((k, id(v)) for k, v in kwargs.items()))
    return key


class Batches:
    """The batchers of one container (a provider): one per function, bound instance,
    keyword values and event loop, forgotten when idle."""

    def __init__(self) -> None:
        self._batchers: dict[tuple[Any, ...], Batcher] = {}

    def __len__(self) -> int:
        return len(self._batchers)

    def batcher(
        self,
        fn: RemoteFunction[..., Any],
        bound: tuple[Any, ...],
        kwargs: dict[str, Any],
        adapter: Callable[[], Adapter],
        run: RunBatch,
        observer: Callable[[], BatchObserver | None],
    ) -> Batcher:
        """The batcher these calls join (made when none is gathering them)."""
        key = (fn.batch_key, tuple(id(b) for b in bound), kwargs_key(kwargs), asyncio.get_running_loop())
        batcher = self._batchers.get(key)
        if batcher is None:

            def forget(done: Batcher) -> None:
                if self._batchers.get(key) is done:
                    del self._batchers[key]

            batcher = self._batchers[key] = Batcher(fn, bound, kwargs, adapter, run, observer, forget)
        return batcher


async def batched_call(
    fn: RemoteFunction[..., Any], bound: tuple[Any, ...], item: Any, kwargs: dict[str, Any], run: RunBatch
) -> Any:
    """``await fn.remote(item, **kwargs)`` of a batched function: join a batch, await this item's result.

    ``timeout`` is this caller's: past it the caller gets ``RemoteTimeoutError`` (its item
    is withdrawn if its batch has not started) and the batch runs on for the others.
    """
    container = get_container()
    observers = container.call_observers()
    tracing = observers.tracing
    if tracing is not None:
        with tracing.span(*remote_span(fn, container.adapter())):
            return await _batched_call(container, observers, fn, bound, item, kwargs, run)
    return await _batched_call(container, observers, fn, bound, item, kwargs, run)


async def _batched_call(
    container: Container,
    observers: CallObservers,
    fn: RemoteFunction[..., Any],
    bound: tuple[Any, ...],
    item: Any,
    kwargs: dict[str, Any],
    run: RunBatch,
) -> Any:
    batcher = container.batches().batcher(fn, bound, kwargs, container.adapter, run, lambda: observers.batch)
    start = time.perf_counter()
    error: BaseException | None = None
    try:
        future = batcher.submit(item)
        timeout = fn.opts.timeout
        if timeout is None:
            return await future
        return await within(
            timeout,
            future,
            lambda: (
                f"`{fn.func.__qualname__}` did not finish within {timeout} s (batched); raise `timeout` or make "
                "batches smaller (`batch_size`)."
            ),
        )
    except Exception as exc:
        error = exc
        raise
    finally:
        observer = observers.observer
        if observer is not None and not isinstance(error, asyncio.CancelledError):
            observer(fn, container.adapter().name, time.perf_counter() - start, error)


async def batched_map(
    fn: RemoteFunction[..., Any],
    bound: tuple[Any, ...],
    items: list[Any],
    concurrency: int | None,
    return_exceptions: bool,
    run: RunBatch,
) -> list[Any]:
    """``.map(items)`` of a batched function: full batches sent straight away, results in order."""
    container = get_container()
    adapter = container.adapter()
    observer = container.call_observers().batch
    loop = asyncio.get_running_loop()
    size = fn.opts.batch_size or 1
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    futures: list[asyncio.Future[Any]] = [loop.create_future() for _ in items]
    gate = asyncio.Semaphore(concurrency or fn.opts.max_concurrency or len(chunks) or 1)

    async def one(index: int, chunk: list[Any]) -> None:
        async with gate:
            now = time.perf_counter()
            batch = [_Waiting(x, futures[index * size + i], now) for i, x in enumerate(chunk)]
            if observer is not None:
                observer(fn, adapter.name, len(batch), 0.0)
            await run_batch(fn, adapter, run, bound, {}, batch)

    await asyncio.gather(*(one(i, chunk) for i, chunk in enumerate(chunks)))
    return list(await asyncio.gather(*futures, return_exceptions=return_exceptions))
