"""Request caching for the routes that opt in with ``@on_request(..., cache={...})``.

The endpoint of a route is picked when the app is built: routes without cache options
keep the plain endpoints of ``routes.py`` and pay nothing. A cached route looks each
request up by key; a hit answers with the stored body bytes (no handler call, no
serialization), and identical requests that miss at the same time share one computation.
See ``docs/caching.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import tempfile
import time
import types
import typing
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote
from weakref import WeakKeyDictionary

from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from starlette.background import BackgroundTasks
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from framex.config import CacheSettings
from framex.container import Container, activate, deactivate
from framex.errors import PluginDefinitionError
from framex.http.envelope import envelope_response, result_response
from framex.http.errors import internal_error
from framex.http.kit_cache import build_key
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

Compute = Callable[[], Awaitable[Response]]

# Printable ASCII but `%` stays as it is in the key header; the rest is percent-encoded,
# so a key can never break the header (CR, LF, non-Latin-1 text).
_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in "%")
_FILE_NAME = re.compile(r"[0-9a-f]{64}")
_MAGIC = b"FRAMEX-CACHE 1\n"
# Parameters the default key cannot describe: what the handler reads from them is unknown.
_UNKEYABLE = (HTTPConnection, BackgroundTasks, Response, UploadFile)


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A stored answer: exactly the bytes sent, with their status and content type."""

    body: bytes
    status: int
    content_type: str | None
    expires_at: float | None
    """On the cache's clock; None: never."""

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def response(self, headers: dict[str, str]) -> Response:
        if self.content_type is not None:
            headers["content-type"] = self.content_type
        return Response(self.body, status_code=self.status, headers=headers)


def freeze(response: Response, expires_at: float | None) -> CachedResponse | None:
    """``response`` as a :class:`CachedResponse`, or None when it cannot be replayed to others.

    Streams and files have no body to keep; background tasks would not run again; other
    headers (``Set-Cookie``...) may belong to one client only.
    """
    body = getattr(response, "body", None)
    if not isinstance(body, bytes) or response.background is not None:
        return None
    content_type = None
    for name, value in response.raw_headers:
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name != b"content-length":
            return None
    return CachedResponse(body, response.status_code, content_type, expires_at)


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


# -- stores -------------------------------------------------------------------------


class CacheStore(Protocol):
    """Where entries live. Keys are opaque strings; ``now`` is on the cache's clock."""

    max_size: int

    async def get(self, key: str, now: float) -> CachedResponse | None: ...

    async def set(self, key: str, entry: CachedResponse) -> None: ...


class MemoryStore:
    """Entries in this process, the oldest stored first."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._entries: OrderedDict[str, CachedResponse] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[str]:
        """The stored keys, oldest first."""
        return list(self._entries)

    async def get(self, key: str, now: float) -> CachedResponse | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expired(now):
            del self._entries[key]
            return None
        return entry

    async def set(self, key: str, entry: CachedResponse) -> None:
        self._entries.pop(key, None)  # stored again: now the newest
        self._entries[key] = entry
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)


class _OutsideDirectoryError(ValueError):
    """A cache file would resolve outside the cache folder (a symlink put there)."""


class FileStore:
    """One file per entry in a folder, named by the sha256 of its key.

    Files are written to a temporary file in the folder and renamed into place, so a
    reader (another process too) sees a whole entry or none. Which files exist is read
    on first use, so entries survive a restart; a file that cannot be read back is a miss.
    Entries are read on the event loop; writes, deletions and the first listing run in
    worker threads. Bookkeeping stays on the loop.
    """

    def __init__(self, directory: str | os.PathLike[str], max_size: int) -> None:
        self.max_size = max_size
        self.directory = Path(directory).resolve()
        self._index: OrderedDict[str, None] | None = None  # file names, oldest first

    def path(self, key: str) -> Path:
        """The file of ``key``; raises if it resolves outside the folder."""
        name = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        path = (self.directory / name).resolve()
        if path.parent != self.directory:
            raise _OutsideDirectoryError(f"`{self.directory / name}` resolves to `{path}`, outside the cache folder")
        return path

    def file_names(self) -> list[str]:
        """The entry files this store knows of, oldest first."""
        return list(self._index or ())

    async def get(self, key: str, now: float) -> CachedResponse | None:
        index = await self._loaded_index()
        try:
            # On the loop: reading a small, page-cached file costs microseconds, while a hop
            # to a worker thread and back costs more than the rest of a hit (bench/cache.py).
            path, data = self._read(key)
        except (OSError, ValueError) as exc:
            logger.warning("Cache file of key %r not readable, treated as a miss: %s", key, exc)
            return None
        if data is None:
            return None
        try:
            entry = _decode(data, key)
        except ValueError as exc:
            logger.warning("Cache file %s is corrupt (%s): treated as a miss", path, exc)
            await self._discard(path.name)
            return None
        if entry.expired(now):
            await self._discard(path.name)
            return None
        index.setdefault(path.name)  # written by another process since the folder was read
        return entry

    async def set(self, key: str, entry: CachedResponse) -> None:
        index = await self._loaded_index()
        try:
            name = await asyncio.to_thread(self._write, key, _encode(key, entry))
        except (OSError, ValueError) as exc:
            logger.warning("Could not store the cache entry of key %r in %s: %s", key, self.directory, exc)
            return
        index.pop(name, None)
        index[name] = None
        evicted = []
        while len(index) > self.max_size:
            evicted.append(index.popitem(last=False)[0])
        if evicted:
            await asyncio.to_thread(self._unlink, evicted)

    async def _loaded_index(self) -> OrderedDict[str, None]:
        if self._index is None:
            names = await asyncio.to_thread(self._scan)
            if self._index is None:  # two first uses may both scan: the result is the same
                self._index = OrderedDict.fromkeys(names)
        return self._index

    async def _discard(self, name: str) -> None:
        if self._index is not None:
            self._index.pop(name, None)
        await asyncio.to_thread(self._unlink, [name])

    def _scan(self) -> list[str]:
        try:
            found = [
                (entry.stat(follow_symlinks=False).st_mtime_ns, entry.name)
                for entry in os.scandir(self.directory)
                if _FILE_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)
            ]
        except FileNotFoundError:
            return []
        return [name for _, name in sorted(found)]

    def _read(self, key: str) -> tuple[Path, bytes | None]:
        path = self.path(key)
        try:
            return path, path.read_bytes()
        except FileNotFoundError:
            return path, None

    def _write(self, key: str, data: bytes) -> str:
        path = self.path(key)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # entries may be private answers
        fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        return path.name

    def _unlink(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(OSError):
                (self.directory / name).unlink()


def _encode(key: str, entry: CachedResponse) -> bytes:
    meta = {
        "key": key,
        "status": entry.status,
        "content_type": entry.content_type,
        "expires_at": entry.expires_at,
        "length": len(entry.body),
    }
    return _MAGIC + json.dumps(meta).encode() + b"\n" + entry.body


def _decode(data: bytes, key: str) -> CachedResponse:
    if not data.startswith(_MAGIC):
        raise ValueError("not a FrameX cache file")
    end = data.find(b"\n", len(_MAGIC))
    if end < 0:
        raise ValueError("no header line")
    meta = json.loads(data[len(_MAGIC) : end])
    body = data[end + 1 :]
    if not isinstance(meta, dict):
        raise ValueError("the header is not a JSON object")
    status, content_type, expires_at = meta.get("status"), meta.get("content_type"), meta.get("expires_at")
    if meta.get("key") != key:
        raise ValueError("it holds another key")
    if not isinstance(status, int) or not 200 <= status < 300:
        raise ValueError(f"bad status {status!r}")
    if content_type is not None and not isinstance(content_type, str):
        raise ValueError("bad content type")
    if expires_at is not None and not isinstance(expires_at, (int, float)):
        raise ValueError("bad expiry")
    if meta.get("length") != len(body):
        raise ValueError(f"the body has {len(body)} bytes, the header says {meta.get('length')!r}")
    return CachedResponse(body, status, content_type, expires_at)


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

    async def fetch(self, key: str, compute: Compute, ttl: int) -> tuple[Response | CachedResponse, bool]:
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

    async def refresh(self, key: str, compute: Compute, ttl: int) -> Response:
        """Compute ``key`` again and store the result (when it is a success)."""
        response = await compute()
        entry = freeze(response, self.expiry(ttl))
        if entry is not None and 200 <= entry.status < 300:
            await self.store.set(key, entry)
        return response

    async def _lead(self, key: str, compute: Compute, ttl: int) -> Response:
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


_caches: WeakKeyDictionary[Container, RequestCache] = WeakKeyDictionary()


def request_cache(container: Container) -> RequestCache:
    """The cache of ``container``'s app (one per container, like the app)."""
    cache = _caches.get(container)
    if cache is None:
        cache = _caches[container] = RequestCache(container.settings().cache)
    return cache


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


class _UnserializableError(Exception):
    """The handler's result could not be serialized (the cause is the real error)."""


def cached_endpoint(
    container: Container, api: PluginApi, request_param: str, keep: bool = False
) -> Callable[..., Awaitable[Response]]:
    """The endpoint of a route with cache options.

    ``request_param`` is the request's kwarg; ``keep`` leaves it in place when it is the
    handler's own parameter.
    """
    settings = container.settings().cache
    route = route_cache(api, settings)  # validated even when caching is off: a config flip must not break it
    registry = container.registry()
    invoke = registry.invoke
    label = api.label
    path = api.path
    assert path is not None  # only HTTP APIs get an endpoint
    raw = api.spec.raw_response
    status = int(api.spec.options.get("status_code", 200))

    async def compute(kwargs: dict[str, Any]) -> Response:
        # The plain endpoint's work, but errors are raised: they may be shared with waiters.
        token = activate(container)
        try:
            if not registry.started:
                await registry.start()
            result = await invoke(api, kwargs)
        finally:
            deactivate(token)
        try:
            return result_response(result, raw, status)
        except Exception as exc:
            raise _UnserializableError from exc

    def failure(request: Request, exc: Exception, headers: dict[str, str]) -> Response:
        if isinstance(exc, HTTPException):
            # A new exception per request: the one raised may be shared by several.
            raise HTTPException(exc.status_code, exc.detail, {**(exc.headers or {}), **headers}) from exc
        if isinstance(exc, _UnserializableError) and isinstance(exc.__cause__, Exception):
            response = internal_error(request, f"{label} (serializing its result)", exc.__cause__)
        else:
            response = internal_error(request, label, exc)
        response.headers.update(headers)
        return response

    async def respond(request: Request, kwargs: dict[str, Any], headers: dict[str, str]) -> Response:
        try:
            response = await compute(kwargs)
        except Exception as exc:
            return failure(request, exc, headers)
        response.headers.update(headers)
        return response

    cache = request_cache(container) if settings.enabled else None
    ttl, key_builder = route.ttl, route.key_builder

    # The loop watchdog names a blocked route from this frame's `request` and `api`.
    async def endpoint(**kwargs: Any) -> Response:
        request: Request = kwargs[request_param] if keep else kwargs.pop(request_param)
        mode = _mode(request)
        if mode is None:
            return _bad_mode()
        if cache is None:
            return await respond(request, kwargs, {STATUS_HEADER: "DISABLED"})
        try:
            key = (
                build_key(key_builder, request, kwargs)
                if key_builder is not None
                else default_key(request.method, path, kwargs)
            )
            if not isinstance(key, str):
                raise TypeError(f"the cache key_builder returned {type(key).__name__}, not str")
        except HTTPException:
            raise
        except Exception as exc:
            return internal_error(request, f"{api.label} (computing its cache key)", exc)
        headers = {KEY_HEADER: header_value(key)}
        # Scoped by route: two routes whose key_builders return the same text stay apart.
        scoped = f"{request.method} {path} {key}"
        if mode == "bypass":
            headers[STATUS_HEADER] = "BYPASS"
            return await respond(request, kwargs, headers)
        try:
            if mode == "refresh":
                headers[STATUS_HEADER] = "REFRESH"
                response = await cache.refresh(scoped, functools.partial(compute, kwargs), ttl)
            else:
                headers[STATUS_HEADER] = "MISS"
                found, hit = await cache.fetch(scoped, functools.partial(compute, kwargs), ttl)
                if isinstance(found, CachedResponse):
                    if hit:
                        headers[STATUS_HEADER] = "HIT"
                    return found.response(headers)
                response = found
        except Exception as exc:
            return failure(request, exc, headers)
        response.headers.update(headers)
        return response

    return endpoint


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
