"""Routes with cache options, for tests/http/test_cache.py. Handlers count their calls in `CALLS`."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from typing import Annotated, Any

from fastapi import HTTPException, Query
from pydantic import BaseModel
from starlette.responses import Response

from framex.plugin import BasePlugin, PluginMetadata, on_register, on_request

__plugin_meta__ = PluginMetadata(name="cached", version="1.0.0")

CALLS: Counter[str] = Counter()
"""Handler calls by handler name; `reset()` clears it."""


class Gate:
    """Holds `/cached/held` computations until a test opens it."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()


GATE = Gate()


def reset() -> None:
    """Forget the calls and close a new gate (events bind to the loop of their first waiter)."""
    global GATE
    CALLS.clear()
    GATE = Gate()


def count(name: str) -> int:
    CALLS[name] += 1
    return CALLS[name]


class Order(BaseModel):
    item: str
    quantity: int = 1
    notes: dict[str, str] = {}


@on_request("/cached/square", cache={})
async def square(x: int) -> dict[str, Any]:
    """Uses the configured ttl; `pid` tells which process computed the answer."""
    return {"x": x, "square": x * x, "call": count("square"), "pid": os.getpid()}


@on_request("/cached/short", cache={"ttl": 5})
async def short(x: int = 0) -> dict[str, int]:
    return {"x": x, "call": count("short")}


@on_request("/cached/forever", cache={"ttl": -1})
async def forever() -> int:
    return count("forever")


@on_request("/cached/order", methods=["POST"], cache={})
async def order(order: Order, rush: bool = False) -> dict[str, Any]:
    return {"item": order.item, "rush": rush, "call": count("order")}


@on_request("/cached/tags", cache={})
def tags(tags: Annotated[frozenset[str], Query()]) -> list[str]:
    """A sync handler; a set parameter must give the same key in any order."""
    count("tags")
    return sorted(tags)


def by_user(user: str, **_: Any) -> str:
    return f"user:{user}"


@on_request("/cached/user", cache={"key_builder": by_user})
async def user(user: str, noise: int = 0) -> dict[str, Any]:
    return {"user": user, "noise": noise, "call": count("user")}


def given_key(key: str) -> str:
    return key


@on_request("/cached/hostile", cache={"key_builder": given_key})
async def hostile(key: str) -> int:
    """The client picks the key: what path containment is tested with."""
    return count("hostile")


@on_request("/cached/held", cache={})
async def held(x: int, fail: bool = False) -> dict[str, int]:
    call = count("held")
    GATE.entered.set()
    await GATE.opened.wait()
    if fail:
        raise RuntimeError("the held computation failed")
    return {"x": x, "call": call}


@on_request("/cached/flaky", cache={})
async def flaky(outcome: str) -> Any:
    call = count("flaky")
    if outcome == "conflict":
        raise HTTPException(status_code=409, detail="Try again", headers={"Retry-After": "1"})
    if outcome == "crash":
        raise RuntimeError("flaky crashed")
    if outcome == "missing":
        return Response(b'{"found": false}', status_code=404, media_type="application/json")
    if outcome == "unserializable":
        return {"call": call, "value": object()}
    return {"call": call}


@on_request("/cached/cookie", cache={})
async def cookie() -> Response:
    """A response with a header of its own: never replayed to other clients."""
    response = Response(str(count("cookie")), media_type="text/plain")
    response.set_cookie("session", "only-for-you")
    return response


@on_request("/cached/created", raw_response=True, status_code=201, cache={"ttl": 60})
async def created(name: str) -> dict[str, Any]:
    return {"name": name, "call": count("created")}


@on_request("/cached/plain")
async def plain() -> int:
    """No cache options: served by the plain endpoint."""
    return count("plain")


@on_register()
class CachedPlugin(BasePlugin):
    @on_request("/cached/where", cache={})
    async def where(self) -> dict[str, int]:
        """A plugin-class API: in Ray mode a miss is forwarded to the plugin's replica."""
        return {"pid": os.getpid(), "call": count("where")}
