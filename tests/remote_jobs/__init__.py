"""Module-level `@remote` jobs for the option tests: importable by worker processes and Ray."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from framex.plugin import remote


def wait_for(path: Path, timeout: float = 20) -> None:
    """Poll for a file with a deadline (used inside jobs to hear from the test)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


@remote(timeout=0.3)
def too_slow(seconds: float) -> str:
    time.sleep(seconds)  # the job's own slowness is what is under test
    return "finished"


@remote(timeout=5)
def raises_timeout() -> None:
    raise TimeoutError("the job's own timeout")


def _attempt(counter: Path) -> int:
    count = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(count))
    return count


@remote(retries=2, retry_on=(ConnectionError,))
def flaky(counter: Path, failures: int) -> int:
    attempt = _attempt(counter)
    if attempt <= failures:
        raise ConnectionError(f"attempt {attempt} failed")
    return attempt


@remote(retries=3, retry_on=(ConnectionError,))
def wrong_kind(counter: Path) -> None:
    attempt = _attempt(counter)
    raise ValueError(f"attempt {attempt}: not retried")


@remote(max_concurrency=2)
async def gated(i: int) -> int:
    await asyncio.sleep(0.01)
    return i


@remote()
def square(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x * x


@remote()
def add(a: int, b: int) -> int:
    return a + b


@remote()
def count_up(n: int, handshake: Path | None = None) -> Iterator[int]:
    for i in range(n):
        yield i
        if handshake is not None and i == 0:
            wait_for(handshake)  # the consumer got item 0 while this is still running


@remote()
async def acount_up(n: int, handshake: Path | None = None) -> AsyncIterator[int]:
    for i in range(n):
        yield i
        if handshake is not None and i == 0:
            deadline = time.monotonic() + 20
            while not handshake.exists():
                assert time.monotonic() < deadline, "handshake never came"
                await asyncio.sleep(0.01)


@remote()
def fails_midway() -> Iterator[int]:
    yield 1
    raise ValueError("broke after one item")


@remote()
def endless(marker: Path) -> Iterator[int]:
    i = 0
    try:
        while True:
            yield i
            i += 1
            time.sleep(0.01)
    finally:
        marker.write_text("stopped")


@remote(executor="process")
def in_process(x: int) -> tuple[int, int]:
    return x * 3, os.getpid()


@remote(executor="process")
async def ain_process(x: int) -> tuple[int, int]:
    await asyncio.sleep(0)
    return x * 4, os.getpid()


@remote(executor="process")
def takes_anything(value: object) -> str:
    return repr(value)


@remote(executor="process")
def crash() -> None:
    os._exit(3)


@remote(num_cpus=1, resources={"memory_hint": 0})
def with_resources(x: int) -> int:
    return x


@remote()
def cancellable(started: Path, cancelled: Path, release: Path) -> str:
    started.write_text("started")
    try:
        deadline = time.monotonic() + 30
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    except KeyboardInterrupt:  # how Ray interrupts a running task it cancels
        cancelled.write_text("cancelled")
        raise
    return "released"


@remote()
def whoami() -> int:
    return os.getpid()
