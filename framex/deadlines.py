"""A ``@remote`` call's ``timeout``: the awaited work, or ``RemoteTimeoutError`` when it runs out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from framex.errors import RemoteTimeoutError

T = TypeVar("T")


async def within(seconds: float, work: Awaitable[T], late: Callable[[], str]) -> T:
    """Await ``work`` for at most ``seconds``; past them raise ``RemoteTimeoutError(late())``.

    A ``TimeoutError`` the work raises itself goes through unchanged.
    """
    try:
        async with asyncio.timeout(seconds) as deadline:
            return await work
    except TimeoutError:
        if not deadline.expired():
            raise  # the function's own TimeoutError
        raise RemoteTimeoutError(late()) from None
