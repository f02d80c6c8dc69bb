"""Pytest fixtures for testing FrameX plugins and services.

Installed as a pytest plugin (entry point ``pytest11``), so these fixtures are available
in any test suite of a project that depends on FrameX:

- ``framex_config_path`` / ``framex_overrides``: override these to configure the container.
- ``framex_container``: a fresh container, active for the test, closed afterwards.
- ``framex_app``: its FastAPI app; ``framex_client``: a ``TestClient`` with lifespan run.
- ``framex_adapter``: a :class:`RecordingAdapter` put in place of the backend.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from framex.container import Container, close_container, create_container, use_container

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from framex.adapters.base import Adapter
    from framex.remote import RemoteFunction


@dataclass
class RemoteCall:
    """One ``.remote()`` call seen by a :class:`RecordingAdapter`."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass
class RecordingAdapter:
    """A backend for tests: runs every ``@remote`` call inline, on the event loop, and records it.

    It implements the whole :class:`framex.adapters.base.Adapter` contract: plain calls,
    fan-outs (``.map``, one record per item) and generator functions (one record per
    stream; their items are yielded as the function produces them).
    """

    name: str = "recording"
    calls: list[RemoteCall] = field(default_factory=list)
    retries_tasks: bool = False

    async def call(self, fn: RemoteFunction[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Record the call and run ``fn`` here."""
        self.calls.append(RemoteCall(fn.func.__qualname__, args, dict(kwargs)))
        result = fn.func(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def call_many(
        self, fn: RemoteFunction[..., Any], calls: list[tuple[Any, ...]], return_exceptions: bool
    ) -> list[Any]:
        """Record and run every call, concurrently."""
        return list(
            await asyncio.gather(*(self.call(fn, args, {}) for args in calls), return_exceptions=return_exceptions)
        )

    async def stream(
        self, fn: RemoteFunction[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> AsyncGenerator[Any, None]:
        """Record the call and yield the generator's items."""
        self.calls.append(RemoteCall(fn.func.__qualname__, args, dict(kwargs)))
        items = fn.func(*args, **kwargs)
        if inspect.isasyncgen(items):
            try:
                async for item in items:
                    yield item
            finally:
                await items.aclose()
            return
        try:
            for item in items:
                yield item
        finally:
            items.close()

    def close(self) -> None:
        """Nothing to release."""

    @property
    def names(self) -> list[str]:
        """The qualified names of the functions called, in order."""
        return [c.name for c in self.calls]


@pytest.fixture
def framex_config_path() -> str | os.PathLike[str] | None:
    """The YAML file for ``framex_container``; None means the default lookup."""
    return None


@pytest.fixture
def framex_overrides() -> dict[str, Any]:
    """Settings that take precedence over the file, e.g. ``{"load_plugins": ["my.plugin"]}``."""
    return {}


@pytest.fixture
def framex_container(
    framex_config_path: str | os.PathLike[str] | None, framex_overrides: dict[str, Any]
) -> Iterator[Container]:
    """A fresh container, active for the duration of the test."""
    container = create_container(framex_config_path, **framex_overrides)
    try:
        with use_container(container):
            yield container
    finally:
        close_container(container)


@pytest.fixture
def framex_app(framex_container: Container) -> FastAPI:
    """The FastAPI app of ``framex_container``."""
    from framex import create_app

    return create_app(framex_container)


@pytest.fixture
def framex_client(framex_app: FastAPI) -> Iterator[TestClient]:
    """A test client for ``framex_app``; plugins are started before the test runs.

    Server errors come back as 500 responses (as a client would see them), not as
    exceptions in the test.
    """
    from fastapi.testclient import TestClient

    with TestClient(framex_app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def framex_adapter(framex_container: Container) -> Iterator[RecordingAdapter]:
    """Replace the container's backend with a :class:`RecordingAdapter`."""
    adapter = RecordingAdapter()
    with framex_container.adapter.override(adapter):
        yield adapter


if TYPE_CHECKING:
    _conforms: Adapter = RecordingAdapter()  # mypy checks the contract; never runs
