"""Upstream services: their address, rules and keys, and a connection pool per event loop."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterable
from typing import Any
from urllib.parse import urlsplit

from framex.builtins.proxy.config import ProxySettings, UpstreamSettings
from framex.builtins.proxy.http1 import Pool, Response

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


class UpstreamUnavailableError(Exception):
    """The upstream could not be reached or did not answer in time."""

    def __init__(self, url: str, timed_out: bool, cause: BaseException) -> None:
        self.url = url
        self.timed_out = timed_out
        what = "did not answer in time" if timed_out else "is unreachable"
        super().__init__(f"upstream {url} {what}: {type(cause).__name__}: {cause}")


def failure(url: str, exc: BaseException) -> UpstreamUnavailableError:
    """The error to raise for ``exc`` met while talking to ``url``."""
    return UpstreamUnavailableError(url, isinstance(exc, TimeoutError), exc)


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
        self._prefix = parts.path.encode("latin-1")  # a base URL may have a path
        self._pools: dict[asyncio.AbstractEventLoop, Pool] = {}

    def pool(self) -> Pool:
        """The connection pool of the running event loop."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            settings = self.settings
            pool = self._pools[loop] = Pool(
                self._host,
                self._port,
                settings.max_connections,
                settings.connect_timeout,
                settings.timeout,
                ssl.create_default_context() if self._tls else None,
            )
        return pool

    def auth_headers(self, path: str) -> list[tuple[bytes, bytes]]:
        """``Authorization`` with the key the rules give ``path``, if any."""
        key = self.rules.key_for(path)
        return [(b"authorization", key.encode("latin-1"))] if key is not None else []

    async def request(
        self,
        method: str,
        path: str,
        query: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes | AsyncIterable[bytes] = b"",
    ) -> Response:
        """Send a request; the caller reads the answer and releases it (``async with``).

        Raises :class:`UpstreamUnavailableError` when no answer's head arrives.
        """
        target = self._prefix + path.encode("latin-1")
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
        response = await self.request("GET", path, headers=self.auth_headers(path))
        async with response:
            try:
                raw = await response.read()
            except (TimeoutError, OSError) as exc:
                raise failure(self.url, exc) from exc
        if response.status != 200:
            raise ValueError(f"GET {self.url}{path} answered {response.status}")
        return json.loads(raw)

    async def close(self) -> None:
        """Close the pool of the running loop; those of other loops are let go."""
        pools, self._pools = self._pools, {}
        loop = asyncio.get_running_loop()
        for owner, pool in pools.items():
            if owner is loop:
                await pool.close()
