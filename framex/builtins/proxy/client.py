"""Upstream services: their address, rules and keys, and a connection pool per event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncGenerator, AsyncIterable
from typing import Any
from urllib.parse import urlsplit

from framex.builtins.proxy.config import ProxySettings, UpstreamSettings
from framex.builtins.proxy.http1 import Pool, Response, UpstreamClosedError, UpstreamProtocolError

logger = logging.getLogger("framex.proxy")

DROPPED_REQUEST_HEADERS = frozenset(
    {
        b"host",
        b"connection",
        b"keep-alive",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"expect",
        b"authorization",  # the key for this service, not the upstream's (see UpstreamSettings.auth)
        b"x-request-id",  # replaced by this request's id
    }
)
"""Request headers not passed on (lower case): hop-by-hop, recomputed, or meant for this service."""

DROPPED_RESPONSE_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"date",
        b"server",
        b"x-request-id",
    }
)
"""Response headers not passed back (lower case): hop-by-hop, or set by this service's server."""


def end_to_end(headers: list[tuple[bytes, bytes]], dropped: frozenset[bytes]) -> list[tuple[bytes, bytes]]:
    """``headers`` without those in ``dropped`` and those the ``Connection`` header names
    (hop-by-hop for this message only, RFC 9110 7.6.1)."""
    named: set[bytes] = set()
    for name, value in headers:
        if len(name) == 10 and name.lower() == b"connection":
            named.update(token.strip().lower() for token in value.split(b","))
    if named:
        dropped = dropped | named
    return [(name, value) for name, value in headers if name.lower() not in dropped]


class UpstreamUnavailableError(Exception):
    """The upstream could not be reached or did not answer in time."""

    def __init__(self, url: str, timed_out: bool, cause: BaseException) -> None:
        self.url = url
        self.timed_out = timed_out
        self.invalid = isinstance(cause, UpstreamProtocolError) or (
            isinstance(cause, UpstreamClosedError) and cause.got_response
        )
        """The upstream answered, but not in valid HTTP (or beyond this client's limits)."""
        what = "did not answer in time" if timed_out else "broke HTTP" if self.invalid else "is unreachable"
        super().__init__(f"upstream {url} {what}: {type(cause).__name__}: {cause}")


def failure(url: str, exc: BaseException) -> UpstreamUnavailableError:
    """The error to raise for ``exc`` met while talking to ``url``."""
    return UpstreamUnavailableError(url, isinstance(exc, TimeoutError), exc)


async def _until_loop_ends(upstream: Upstream, loop: asyncio.AbstractEventLoop) -> AsyncGenerator[None, None]:
    # `asyncio.run` and `asyncio.Runner` (so uvicorn, TestClient, scripts) close every
    # unfinished async generator of a loop while it still runs, just before closing it:
    # this one, started and left waiting, closes the loop's pool then.
    try:
        yield
    finally:
        await upstream.forget(loop)


class Upstream:
    """One upstream service: its base URL, rules and keys, and its connection pools.

    A pool belongs to the event loop that made it: a call from another loop (a script's
    ``asyncio.run``) gets a pool of its own.
    """

    def __init__(self, url: str, rules: UpstreamSettings, settings: ProxySettings) -> None:
        self.url = url
        self.rules = rules
        self.settings = settings
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._tls = parts.scheme == "https"
        self._port = parts.port or (443 if self._tls else 80)
        self._prefix = parts.path.encode("ascii")  # a base URL may have a path (validated as ASCII)
        self._pools: dict[asyncio.AbstractEventLoop, Pool] = {}
        self._watchers: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}

    def pool(self) -> Pool:
        """The connection pool of the running event loop (closed and forgotten when that loop ends)."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            for other in [other for other in self._pools if other.is_closed()]:
                # Closed without closing its async generators first (a bare `loop.close()`):
                # its connections can no longer be closed through it; let them go.
                self._pools.pop(other, None)
                self._watchers.pop(other, None)
            settings = self.settings
            pool = self._pools[loop] = Pool(
                self._host,
                self._port,
                settings.max_connections,
                settings.connect_timeout,
                settings.timeout,
                ssl.create_default_context() if self._tls else None,
                settings.max_header_bytes,
            )
            watcher = self._watchers[loop] = _until_loop_ends(self, loop)
            step = watcher.asend(None).__await__()
            with contextlib.suppress(StopIteration):  # run it to its `yield`: the loop now knows it
                step.send(None)
        return pool

    async def forget(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close and forget the pool of ``loop`` (the running loop)."""
        self._watchers.pop(loop, None)
        pool = self._pools.pop(loop, None)
        if pool is not None:
            await pool.close()

    def auth_headers(self, path: str) -> list[tuple[bytes, bytes]]:
        """``Authorization`` with the key the rules give ``path``, if any."""
        key = self.rules.key_for(path)
        return [(b"authorization", key.encode("latin-1"))] if key is not None else []

    async def request(
        self,
        method: str,
        path: bytes,
        query: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes | AsyncIterable[bytes] = b"",
    ) -> Response:
        """Send a request to ``path`` (percent-encoded, as it goes on the request line);
        the caller reads the answer and releases it (``async with``).

        Raises :class:`UpstreamUnavailableError` when no valid answer's head arrives,
        ``ValueError`` for a path or query that cannot go on a request line.
        """
        target = self._prefix + path
        if query:
            target += b"?" + query
        try:
            return await self.pool().request(method, target, headers or [], body)
        except (TimeoutError, OSError) as exc:  # ConnectionError is an OSError
            raise failure(self.url, exc) from exc

    async def get_json(self, path: str) -> Any:
        """GET ``path`` and parse its JSON (the OpenAPI document).

        Raises ``ValueError`` when the answer is not a 200 with JSON.
        """
        response = await self.request("GET", path.encode("ascii"), headers=self.auth_headers(path))
        async with response:
            try:
                raw = await response.read()
            except (TimeoutError, OSError) as exc:
                raise failure(self.url, exc) from exc
        if response.status != 200:
            raise ValueError(f"GET {self.url}{path} answered {response.status}")
        return json.loads(raw)

    async def close(self) -> None:
        """Close the pool of the running loop; those of other loops close when their loop ends."""
        loop = asyncio.get_running_loop()
        watcher = self._watchers.get(loop)
        await self.forget(loop)
        if watcher is not None:
            await watcher.aclose()
