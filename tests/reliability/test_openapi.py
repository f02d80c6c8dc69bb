"""Schemathesis against the service's own OpenAPI document: no 500s, answers that match the schema.

Every documented operation of the test service is called with generated requests, valid
ones (positive) and invalid ones (negative), on a real `framex run`.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.reliability.conftest import CI, Service, Sizes

ON_PURPOSE = {
    "/api/v1/kitchen/boom": "raises on purpose (a 500 test)",
    "/api/v1/kitchen/undeclared": "calls an API it does not declare, on purpose (a 500 test)",
    "/api/v1/kitchen/blocking": "waits up to 30 s for a gate that tests open",
    "/api/v1/faulty/die": "kills its worker on purpose",
}
"""Operations of the test plugins that fail or hang by design; everything else is fuzzed.

Server-Sent Events routes are left out too: their length is the caller's (`n`, `delay`),
so a generated request can stream for as long as it likes, and their events have no
schema to check. tests/http/test_app.py covers them.
"""


def streams(operation: Any) -> bool:
    content = operation.definition.raw.get("responses", {}).get("200", {}).get("content", {})
    return "text/event-stream" in content


CHECKS = [not_a_server_error, response_schema_conformance]
"""Not schemathesis' `negative_data_rejection`: FastAPI validates in pydantic's lax mode, where a
JSON `true` is a valid `int` and `"3"` too, so some "schema-violating" requests are rightly served."""


def fuzz(service: Service, operation: Any, mode: GenerationMode, sizes: Sizes) -> None:
    @settings(
        max_examples=sizes.openapi_examples,
        deadline=None,
        database=None,
        derandomize=sizes is CI,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=service.url, timeout=30)
        case.validate_response(response, checks=CHECKS)

    check()


def test_every_operation_answers_per_the_schema(local_service: Service, sizes: Sizes) -> None:
    schema = schemathesis.openapi.from_url(f"{local_service.url}/api/v1/openapi.json")
    failures: list[str] = []
    fuzzed = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in ON_PURPOSE or operation.path.startswith("/api/v1/faulty/") or streams(operation):
            continue
        fuzzed += 1
        for mode in GenerationMode:
            try:
                fuzz(local_service, operation, mode, sizes)
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # no parameters: no invalid request to make
            except Exception as exc:
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}")
    assert fuzzed >= 22  # the test service's operations, less the ones left out
    assert failures == [], "\n\n".join(failures)
    assert local_service.alive()


def test_422_answers_are_documented_as_the_envelope(local_service: Service) -> None:
    # Before: the document promised FastAPI's `{"detail": [...]}` for 422s, FrameX sent its envelope.
    document = httpx.get(f"{local_service.url}/api/v1/openapi.json").json()
    assert "HTTPValidationError" not in str(document)
    answer = document["paths"]["/api/v1/kitchen/order"]["post"]["responses"]["422"]
    ref = answer["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["required"] == ["status", "message", "timestamp"]
    problem = document["components"]["schemas"]["ValidationProblem"]
    assert sorted(problem["properties"]) == ["loc", "msg", "type"]
    # Routes without parameters cannot answer 422, and say nothing about it.
    assert "422" not in document["paths"]["/api/v1/kitchen/state"]["get"]["responses"]


@pytest.mark.parametrize("path", sorted(ON_PURPOSE))
def test_the_operations_left_out_exist(local_service: Service, path: str) -> None:
    document = httpx.get(f"{local_service.url}/api/v1/openapi.json").json()
    assert path in document["paths"]
