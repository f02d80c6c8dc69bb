"""Access control: API keys required by request path (``auth.rules``).

A pure ASGI middleware, installed only when there are rules. Per request it costs one
dict lookup plus a ``startswith`` per wildcard rule; a protected path adds a header scan
and the key check. A key is checked by its SHA-256 digest against every accepted key's,
in constant time. A key that passed is remembered (a dict from the key to the rules it
passed), so the next requests with it skip the digest: looking a wrong key up in that
dict compares hashes keyed with the process's secret seed, so its timing says nothing
about how close the key came to a valid one, and only keys that passed are stored, so
clients cannot grow it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from starlette.types import ASGIApp, Receive, Scope, Send

from framex.http.envelope import envelope_response

if TYPE_CHECKING:
    from fastapi import FastAPI

    from framex.config import AuthSettings

logger = logging.getLogger("framex.http")

MISSING_KEY_MESSAGE = "Authentication required: send an API key in the `Authorization` header (`Bearer <key>`)."
WRONG_KEY_MESSAGE = "Invalid API key."
_CHALLENGE = {"WWW-Authenticate": "Bearer"}

Digests = tuple[bytes, ...]
T = TypeVar("T")


def _digest(key: bytes) -> bytes:
    # Comparing fixed-size digests keeps the key's length out of the timing too.
    return hashlib.sha256(key).digest()


def rule_table(rules: Mapping[str, T]) -> tuple[dict[str, T], tuple[tuple[str, T], ...]]:
    """Path rules (an exact path, or a prefix ending in ``*``) as a lookup table: the exact
    paths as a dict, the prefixes longest first (so the first match wins)."""
    exact: dict[str, T] = {}
    prefixes: list[tuple[str, T]] = []
    for path, value in rules.items():
        if path.endswith("*"):
            prefixes.append((path[:-1], value))
        else:
            exact[path] = value
    prefixes.sort(key=lambda rule: len(rule[0]), reverse=True)
    return exact, tuple(prefixes)


def match_rule(table: tuple[dict[str, T], tuple[tuple[str, T], ...]], path: str) -> T | None:
    """The value of the rule ``path`` falls under: the exact rule, else the longest prefix."""
    exact, prefixes = table
    found = exact.get(path)
    if found is not None:
        return found
    for prefix, value in prefixes:
        if path.startswith(prefix):
            return value
    return None


def compile_rules(rules: Mapping[str, Sequence[str]]) -> tuple[dict[str, Digests], tuple[tuple[str, Digests], ...]]:
    """:func:`rule_table` of the keys' digests."""
    return rule_table({path: tuple(_digest(key.encode("ascii")) for key in keys) for path, keys in rules.items()})


def route_path(scope: Scope) -> str:
    """The path the app's router matches: without the ``root_path`` of a mount or proxy."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    # The same reading as Starlette's router, so a rule and the route it names always agree.
    rest = path[len(root) :]
    return rest if not rest or rest[0] == "/" else path


def _presented_key(scope: Scope) -> bytes | None:
    """The key of the ``Authorization`` header, raw or ``Bearer <key>``; None when absent."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == b"authorization":
            value = value.strip()
            if not value:
                return None
            scheme, space, rest = value.partition(b" ")
            if not space:
                return value  # keys hold no spaces, so a value without one is a raw key
            # Another scheme (`Basic ...`) yields a key nothing matches.
            return rest.strip() if scheme.lower() == b"bearer" else b""
    return None


def _accepted(key: bytes, digests: Digests) -> bool:
    presented = _digest(key)
    accepted = False
    for digest in digests:
        # No early exit: the time taken does not tell which key (if any) matched.
        accepted |= hmac.compare_digest(presented, digest)
    return accepted


MAX_REMEMBERED = 1024
"""Accepted keys remembered at most (there are as many as configured, unless the rules change)."""


class ApiKeys:
    """The API keys of ``auth.rules``: which paths need one, and whether a request's key
    passes. A container provider (``api_keys``, None without rules), shared by the auth
    middleware and the compiled request path, so a key checked once is remembered for both."""

    def __init__(self, rules: Mapping[str, Sequence[str]]) -> None:
        self.exact, self.prefixes = compile_rules(rules)
        self._passed: dict[bytes, set[Digests]] = {}
        """Keys that passed a check, with the rules' digests they passed (see the module docstring)."""

    def verdict(self, scope: Scope) -> bool | None:
        """None: no rule covers the request's path (public); True: it carries a key the rule
        accepts; False: it carries none, or a wrong one."""
        path: str = scope["path"]
        if scope.get("root_path"):
            path = route_path(scope)
        digests = self.exact.get(path)
        if digests is None:
            for prefix, prefix_digests in self.prefixes:
                if path.startswith(prefix):
                    digests = prefix_digests
                    break
            else:
                return None
        key = _presented_key(scope)
        if key is None:
            return False
        passed = self._passed.get(key)
        if passed is not None and digests in passed:
            return True
        if _accepted(key, digests):
            self._remember(key, digests)
            return True
        return False

    def _remember(self, key: bytes, digests: Digests) -> None:
        passed = self._passed.get(key)
        if passed is None:
            if len(self._passed) >= MAX_REMEMBERED:
                return
            passed = self._passed[key] = set()
        passed.add(digests)


def api_keys_for(settings: AuthSettings) -> ApiKeys | None:
    """The ``api_keys`` provider's value: None when no path needs a key."""
    return ApiKeys(settings.rules) if settings.rules else None


class AuthMiddleware:
    """Refuse requests to protected paths (401, enveloped) unless they carry an accepted key."""

    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys

    # Not `async def`: passing a request on returns the app's awaitable, which saves a
    # coroutine frame per request.
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        kind = scope["type"]
        if (kind == "http" or kind == "websocket") and self.keys.verdict(scope) is False:
            return self._refuse(scope, receive, send, missing=_presented_key(scope) is None)
        return self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, missing: bool) -> None:
        # The path and the reason only: the presented key never reaches a log or a response.
        logger.debug(
            "%s %s refused: %s",
            scope.get("method", "WEBSOCKET"),
            scope["path"],
            "no API key" if missing else "wrong API key",
        )
        if scope["type"] == "websocket":
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008})
            return
        response = envelope_response(
            None, status=401, message=MISSING_KEY_MESSAGE if missing else WRONG_KEY_MESSAGE, headers=_CHALLENGE
        )
        await response(scope, receive, send)


def install_auth(app: FastAPI, keys: ApiKeys | None) -> None:
    """Protect the paths that need ``keys``; without rules (None) nothing is installed."""
    if keys is not None:
        app.add_middleware(AuthMiddleware, keys=keys)
