"""External APIs in the OpenAPI document: their operation and the schemas it refers to."""

from __future__ import annotations

import inspect
from typing import Any

from framex.http.external import add_operation
from framex.plugin.decorators import ApiSpec
from framex.plugin.loader import ExternalApi
from framex.plugin.metadata import ApiType


async def _call(**kwargs: Any) -> Any:
    return kwargs


def _api(operation: dict[str, Any], schemas: dict[str, Any]) -> ExternalApi:
    return ExternalApi(
        plugin="proxy",
        name="proxy:POST /api/v1/things",
        spec=ApiSpec(path="/api/v1/things", methods=("POST",), call_type=ApiType.HTTP, api_prefix=False),
        func=_call,
        owner=None,
        signature=inspect.Signature(),
        return_type=Any,
        model_params={},
        operation=operation,
        schemas=schemas,
        source="http://127.0.0.1:9000",
    )


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def test_referenced_schemas_come_along_and_clashing_names_are_renamed() -> None:
    ours = {"paths": {}, "components": {"schemas": {"Thing": {"type": "string"}, "Same": {"type": "integer"}}}}
    theirs = {
        "Thing": {"type": "object", "properties": {"part": _ref("Part"), "same": _ref("Same")}},
        "Part": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "Same": {"type": "integer"},
        "Unused": {"type": "boolean"},
    }
    operation = {"requestBody": {"content": {"application/json": {"schema": _ref("Thing")}}}, "responses": {}}
    add_operation(ours, _api(operation, theirs))

    schemas = ours["components"]["schemas"]
    renamed = "Thing__http_127_0_0_1_9000"
    body = ours["paths"]["/api/v1/things"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == _ref(renamed)
    assert schemas["Thing"] == {"type": "string"}  # ours untouched
    assert schemas[renamed]["properties"] == {"part": _ref("Part"), "same": _ref("Same")}
    assert schemas["Part"] == theirs["Part"]
    assert "Unused" not in schemas
    assert ours["paths"]["/api/v1/things"]["post"]["tags"] == ["proxy"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == _ref("Thing")  # a copy was changed
