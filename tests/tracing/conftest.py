from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import framex
from framex.container import Container, close_container
from framex.tracing import Tracing

TRACED = "tests.fixture_plugins.traced"


class Spans:
    """The spans a service exported, in the order they ended."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter

    def all(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> ReadableSpan:
        found = [s for s in self.all() if s.name == name]
        assert len(found) == 1, (name, [s.name for s in self.all()])
        return found[0]


def tracing_settings(**extra: Any) -> dict[str, Any]:
    """Tracing on, exporting nowhere (the tests read an in-memory exporter instead)."""
    return {"enabled": True, "exporter": "none", "service_name": "traced-test", **extra}


@pytest.fixture(params=[True, False], ids=["compiled", "fastapi-path"])
def traced_service(request: pytest.FixtureRequest) -> Iterator[tuple[TestClient, Container, Spans]]:
    """A client of an app with the `traced` plugin whose spans go to an in-memory exporter,
    its plugin routes compiled or served by FastAPI (each makes the request's span itself)."""
    container = framex.create_container(
        None,
        load_plugins=[TRACED],
        load_builtin_plugins=[],
        tracing=tracing_settings(),
        server={"compiled_routes": request.param},
    )
    exporter = InMemorySpanExporter()
    container.tracing.override(Tracing(container.settings().tracing, exporter=exporter))
    try:
        with (
            framex.use_container(container),
            TestClient(framex.create_app(container), raise_server_exceptions=False) as client,
        ):
            yield client, container, Spans(exporter)
    finally:
        close_container(container)
        container.tracing.reset_override()


Service = tuple[TestClient, Container, Spans]
