"""Request caching for the routes that opt in with ``@on_request(..., cache={...})``.

The cache is a layer of the request pipeline (:mod:`framex.http.pipeline`), put around
the routes that have cache options when the app is built: the others pay nothing. A
cached route looks each request up by key; a hit answers with the stored body bytes (no handler call, no
serialization), and identical requests that miss at the same time share one computation.
See ``docs/caching.md``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import time
import types
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from starlette.background import BackgroundTasks
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from framex.config import CacheSettings
from framex.errors import PluginDefinitionError
from framex.http.cache_stores import CachedResponse, CacheStore, FileStore, MemoryStore, freeze
from framex.http.envelope import envelope_response
from framex.http.errors import internal_error
from framex.http.kit_cache import key_function
from framex.http.pipeline import Compute, Layer, failure
from framex.plugin.loader import PluginApi

logger = logging.getLogger("framex.cache")

CACHE_HEADER = "X-FrameX-Cache"
"""Request header: ``use`` (the default), ``bypass`` or ``refresh``."""
STATUS_HEADER = "X-FrameX-Cache-Status"
"""Response header: ``DISABLED``, ``BYPASS``, ``HIT``, ``MISS`` or ``REFRESH``."""
KEY_HEADER = "X-FrameX-Cache-Key"
"""Response header: the request's cache key (percent-encoded where it is not printable ASCII)."""
MODES = ("use", "bypass", "refresh")
ROUTE_OPTIONS = ("ttl", "key_builder")

Run = Callable[[], Awaitable[Response]]
"""Computes the response of one request (a pipeline compute step with its arguments bound)."""

# Printable ASCII but `%` stays as it is in the key header; the rest is percent-encoded,
# so a key can never break the header (CR, LF, non-Latin-1 text).
_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in "%")
# Parameters the default key cannot describe: what the handler reads from them is unknown.
_UNKEYABLE = (HTTPConnection, BackgroundTasks, Response, UploadFile)


# -- keys ---------------------------------------------------------------------------


def default_key(method: str, path: str, kwargs: Mapping[str, Any]) -> str:
    """The sha256 hex digest of the method, the route path and the validated arguments.

    The arguments are hashed in a canonical JSON form (models as their JSON, sorted keys,
    sets sorted), so equal arguments give the same key in every process.
    """
    text = json.dumps([method, path, _plain(kwargs)], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(to_jsonable_python(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        # Iteration order of a set differs between equal sets and between processes.
        return sorted((_plain(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    return to_jsonable_python(value)


def header_value(key: str) -> str:
    """``key`` as it is sent in the ``X-FrameX-Cache-Key`` header."""
    return quote(key, safe=_HEADER_SAFE)


# -- the cache of one app -----------------------------------------------------------


class _AbandonedError(Exception):
    """The request computing an entry went away (cancelled): a waiter computes it instead."""


class _Flight:
    __slots__ = ("future", "waiters")

    def __init__(self, future: asyncio.Future[CachedResponse | None]) -> None:
        self.future = future
        self.waiters = 0


class RequestCache:
    """The cache of one container's app: its store, its clock and the computations in flight."""

    def __init__(self, settings: CacheSettings, clock: Callable[[], float] | None = None) -> None:
        self.settings = settings
        self.store: CacheStore
        if settings.mode == "file":
            self.store = FileStore(settings.file_dir, settings.max_size)
        else:
            self.store = MemoryStore(settings.max_size)
        # File entries outlive the process, so their expiry is wall-clock time.
        self.clock: Callable[[], float] = clock or (time.time if settings.mode == "file" else time.monotonic)
        """Seconds; replace it to test expiry without waiting."""
        self._flights: dict[str, _Flight] = {}

    def waiting(self) -> int:
        """How many requests are waiting for an identical request's computation right now."""
        return sum(flight.waiters for flight in self._flights.values())

    def expiry(self, ttl: int) -> float | None:
        return None if ttl == -1 else self.clock() + ttl

    async def fetch(self, key: str, compute: Run, ttl: int) -> tuple[Response | CachedResponse, bool]:
        """The stored entry of ``key`` (and True), or its computed response (and False).

        Only one request computes a missing key at a time; identical requests arriving
        meanwhile wait for its result, or for its exception, which they raise too.
        """
        while True:
            flight = self._flights.get(key)
            if flight is None:
                entry = await self.store.get(key, self.clock())
                if entry is not None:
                    return entry, True
                flight = self._flights.get(key)  # one may have started while the store was read
                if flight is None:
                    return await self._lead(key, compute, ttl), False
            flight.waiters += 1
            try:
                shared = await asyncio.shield(flight.future)
            except _AbandonedError:
                continue
            finally:
                flight.waiters -= 1
            if shared is None:  # an answer that cannot be replayed: this request computes its own
                return await compute(), False
            return shared, False

    async def refresh(self, key: str, compute: Run, ttl: int) -> Response:
        """Compute ``key`` again and store the result (when it is a success)."""
        response = await compute()
        entry = freeze(response, self.expiry(ttl))
        if entry is not None and 200 <= entry.status < 300:
            await self.store.set(key, entry)
        return response

    async def _lead(self, key: str, compute: Run, ttl: int) -> Response:
        future: asyncio.Future[CachedResponse | None] = asyncio.get_running_loop().create_future()
        self._flights[key] = _Flight(future)
        try:
            try:
                response = await compute()
            except Exception as exc:
                _fail(future, exc)  # not stored: each waiter reports it as its own
                raise
            except BaseException:
                _fail(future, _AbandonedError())
                raise
            entry = freeze(response, self.expiry(ttl))
            future.set_result(entry)
            if entry is not None and 200 <= entry.status < 300:
                await self.store.set(key, entry)
            return response
        finally:
            del self._flights[key]


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    future.set_exception(exc)
    future.exception()  # retrieved: no "never retrieved" report when nobody was waiting


# -- routes -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteCache:
    """A route's validated ``cache={...}`` options."""

    ttl: int
    key_builder: Callable[..., Any] | None


def route_cache(api: PluginApi, settings: CacheSettings) -> RouteCache:
    """Validate the ``cache`` option of ``api``; raise :class:`PluginDefinitionError`."""
    options = api.spec.options.get("cache")
    where = f"`{api.name}`: @on_request(cache=...)"
    if api.spec.stream:
        raise PluginDefinitionError(
            f"{where}: a streaming API (stream=True) cannot be cached; remove `cache` or `stream=True`."
        )
    if not isinstance(options, Mapping):
        raise PluginDefinitionError(
            f"{where} takes a dict such as {{'ttl': 60}}, or {{}} for the configured ttl; got {type(options).__name__}."
        )
    unknown = sorted(str(k) for k in options if k not in ROUTE_OPTIONS)
    if unknown:
        raise PluginDefinitionError(f"{where}: unknown option(s) {', '.join(unknown)}; accepted: ttl, key_builder.")
    ttl = options.get("ttl", settings.ttl)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or (ttl != -1 and ttl <= 0):
        raise PluginDefinitionError(f"{where}: `ttl` is a number of seconds > 0, or -1 for no expiry; got {ttl!r}.")
    key_builder = options.get("key_builder")
    if key_builder is not None and not callable(key_builder):
        raise PluginDefinitionError(f"{where}: `key_builder` must be a callable returning a str.")
    if key_builder is None:
        unkeyable = [p.name for p in api.signature.parameters.values() if _unkeyable(p.annotation)]
        if unkeyable:
            raise PluginDefinitionError(
                f"{where}: the default key cannot describe parameter(s) {', '.join(unkeyable)} "
                "(a request, response, upload or background tasks); give a `key_builder`."
            )
    return RouteCache(ttl, key_builder)


def _unkeyable(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unkeyable(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return any(_unkeyable(arg) for arg in typing.get_args(annotation))
    return isinstance(annotation, type) and issubclass(annotation, _UNKEYABLE)


def cache_layer(cache: RequestCache | None, settings: CacheSettings) -> Layer:
    """The request-pipeline layer of routes with cache options; ``cache`` None: caching is off.

    A hit answers with the stored bytes (no handler call); identical requests that miss
    at the same time share one computation. Every answer says what happened
    (``X-FrameX-Cache-Status``) and under which key.
    """

    def layer(api: PluginApi, compute: Compute) -> Compute:
        route = route_cache(api, settings)  # validated even when caching is off: a config flip must not break it
        ttl = route.ttl
        # FrameX's key builders take the handler's arguments; FrameX-kit's the request too.
        key_of = key_function(route.key_builder) if route.key_builder is not None else None
        label, path = api.label, api.path
        assert path is not None  # only HTTP APIs get routes

        async def respond(request: Request, kwargs: dict[str, Any], headers: dict[str, str]) -> Response:
            try:
                response = await compute(request, kwargs)
            except Exception as exc:
                return failure(request, label, exc, headers)
            response.headers.update(headers)
            return response

        async def cached(request: Request, kwargs: dict[str, Any]) -> Response:
            mode = _mode(request)
            if mode is None:
                return _bad_mode()
            if cache is None:
                return await respond(request, kwargs, {STATUS_HEADER: "DISABLED"})
            try:
                key = key_of(request, kwargs) if key_of is not None else default_key(request.method, path, kwargs)
                if not isinstance(key, str):
                    raise TypeError(f"the cache key_builder returned {type(key).__name__}, not str")
            except HTTPException:
                raise
            except Exception as exc:
                return internal_error(request, f"{label} (computing its cache key)", exc)
            headers = {KEY_HEADER: header_value(key)}
            # Scoped by route: two routes whose key_builders return the same text stay apart.
            scoped = f"{request.method} {path} {key}"
            if mode == "bypass":
                headers[STATUS_HEADER] = "BYPASS"
                return await respond(request, kwargs, headers)
            run = functools.partial(compute, request, kwargs)
            try:
                if mode == "refresh":
                    headers[STATUS_HEADER] = "REFRESH"
                    response = await cache.refresh(scoped, run, ttl)
                else:
                    headers[STATUS_HEADER] = "MISS"
                    found, hit = await cache.fetch(scoped, run, ttl)
                    if isinstance(found, CachedResponse):
                        if hit:
                            headers[STATUS_HEADER] = "HIT"
                        return found.response(headers)
                    response = found
            except Exception as exc:
                return failure(request, label, exc, headers)
            response.headers.update(headers)
            return response

        return cached

    return layer


def _mode(request: Request) -> str | None:
    value = request.headers.get(CACHE_HEADER)
    if value is None:
        return "use"
    value = value.strip().lower()
    return value if value in MODES else None


def _bad_mode() -> Response:
    return envelope_response(
        None, status=400, message=f"Invalid `{CACHE_HEADER}` request header: use one of {', '.join(MODES)}."
    )
