"""A load generator that checks every answer against the request it belongs to.

Request ``i`` carries the id ``<prefix>-<i>`` (``X-Request-ID``) and arguments derived
from ``i``; its answer must come back with that id, the expected status and the
expected data. Nothing is sampled: every request is accounted for.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit


@dataclass(frozen=True)
class Planned:
    method: str
    path: str
    params: dict[str, Any]
    body: Any
    status: int
    data: Any
    """The expected `data` of the envelope (unused for 500s, which carry the request id)."""


def mixed(i: int) -> Planned:
    """The request mix: async, sync and `@remote` handlers, a JSON body, and a handler that raises."""
    if i % 50 == 49:
        return Planned("GET", "/api/v1/kitchen/boom", {}, None, 500, None)
    kind = i % 4
    if kind == 0:
        return Planned("GET", "/api/v1/echo", {"message": f"m{i}"}, None, 200, f"m{i}")
    if kind == 1:
        return Planned("GET", "/api/v1/demo/run", {"x": i}, None, 200, 2 * i)
    if kind == 2:
        quantity = i % 5 + 1
        body = {"item": "tea", "quantity": quantity}
        return Planned(
            "POST",
            "/api/v1/kitchen/order",
            {"note": f"-{i}"},
            body,
            200,
            {"item": f"tea-{i}", "quantity": 2 * quantity},
        )
    return Planned(
        "GET", "/api/v1/kitchen/defaults", {"count": i}, None, 200, {"name": "chef", "count": i, "hot": True}
    )


@dataclass
class Outcome:
    requests: int
    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    answered: set[int] = field(default_factory=set)
    wrong: list[str] = field(default_factory=list)
    """Answers that do not match their request (status, id or data)."""
    errors: list[str] = field(default_factory=list)
    """Requests that got no HTTP answer at all (connection errors, timeouts)."""

    def summary(self) -> str:
        rate = self.requests / self.seconds if self.seconds else 0.0
        return f"{self.requests} requests in {self.seconds:.1f} s ({rate:.0f}/s), statuses {dict(self.statuses)}"


def _check(i: int, rid: str, plan: Planned, status: int, headers: dict[str, str], body: Any) -> str | None:
    if status != plan.status:
        return f"#{i} {plan.path}: status {status}, expected {plan.status}: {body!r:.200}"
    if headers.get("x-request-id") != rid:
        return f"#{i} {plan.path}: X-Request-ID {headers.get('x-request-id')!r}, expected {rid!r}"
    if not isinstance(body, dict) or body.get("status") != plan.status:
        return f"#{i} {plan.path}: not the envelope of a {plan.status}: {body!r:.200}"
    if plan.status == 500:
        if body.get("request_id") != rid or rid not in body.get("message", ""):
            return f"#{i} {plan.path}: 500 without its request id: {body}"
    elif body.get("data") != plan.data:
        return f"#{i} {plan.path}: data {body.get('data')!r}, expected {plan.data!r}"
    return None


def _encode(plan: Planned, host: str, rid: str) -> bytes:
    target = f"{plan.path}?{urlencode(plan.params)}" if plan.params else plan.path
    head = f"{plan.method} {target} HTTP/1.1\r\nHost: {host}\r\nX-Request-ID: {rid}\r\n"
    content = b"" if plan.body is None else json.dumps(plan.body).encode()
    if plan.body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(content)}\r\n"
    return (head + "\r\n").encode("latin-1") + content


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        return status, headers, await reader.readexactly(int(headers["content-length"]))
    body = b""
    while size := int((await reader.readuntil(b"\r\n")).strip(), 16):  # chunked
        body += await reader.readexactly(size)
        await reader.readexactly(2)
    await reader.readuntil(b"\r\n")
    return status, headers, body


async def run_load(
    base_url: str, requests: int, concurrency: int, prefix: str, plan: Callable[[int], Planned] = mixed
) -> Outcome:
    """Send ``requests`` requests over ``concurrency`` keep-alive connections, one request at a time each.

    A small HTTP/1.1 client of its own: at a concurrency of 100, httpx's connection
    pool costs more CPU than the server under test.
    """
    outcome = Outcome(requests=requests, seconds=0.0)
    pending = iter(range(requests))
    address = urlsplit(base_url)
    host, port = address.hostname or "127.0.0.1", address.port or 80

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in pending:
                planned = plan(i)
                rid = f"{prefix}-{i}"
                try:
                    writer.write(_encode(planned, f"{host}:{port}", rid))
                    status, headers, raw = await asyncio.wait_for(_read_response(reader), 60)
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
                    outcome.errors.append(f"#{i} {planned.path}: {type(exc).__name__}: {exc}")
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                if i in outcome.answered:
                    outcome.wrong.append(f"#{i} answered twice")
                outcome.answered.add(i)
                outcome.statuses[status] += 1
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
                problem = _check(i, rid, planned, status, headers, body)
                if problem is not None:
                    outcome.wrong.append(problem)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    outcome.seconds = time.perf_counter() - started
    return outcome
