"""A bare ASGI callable doing what ``bench.request_path``'s query route does, and nothing else.

It parses the query string, checks that ``x`` is an int (422 if not), JSON-encodes
``{"x": x}`` and sends the response start and body: the floor under any framework.
"""

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

# The ASGI types, spelled out: this app imports nothing of any framework.
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
PATH = "/api/v1/q"


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    # Uvicorn's lifespan "auto" would log an error for an app that fails this exchange.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Message, receive: Receive, send: Send) -> None:
    """The ASGI application."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    if scope["path"] != PATH:
        await _answer(send, 404, b'{"detail":"Not Found"}')
        return
    raw = ""  # a missing x fails like a bad one
    for key, value in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True):
        if key == "x":
            raw = value  # the last one wins, as in FastAPI
    try:
        x = int(raw)
    except ValueError:
        await _answer(send, 422, b'{"detail":"x: an integer is required"}')
        return
    await _answer(send, 200, json.dumps({"x": x}).encode())
