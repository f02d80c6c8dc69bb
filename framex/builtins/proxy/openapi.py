"""Reading an upstream's OpenAPI document: the operations to mirror and their schemas."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from framex.builtins.proxy.config import UpstreamSettings, matches

METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
SSE = "text/event-stream"


@dataclass(frozen=True)
class Param:
    """A path or query parameter of an operation."""

    name: str
    where: str  # "path" | "query"
    required: bool
    is_list: bool = False


@dataclass
class Operation:
    """One method on one path of an upstream, as its OpenAPI document describes it."""

    path: str
    method: str  # upper case
    spec: dict[str, Any]
    params: list[Param] = field(default_factory=list)
    has_body: bool = False
    stream: bool = False

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


def _is_list(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    if schema.get("type") == "array":
        return True
    return any(_is_list(s) for s in schema.get("anyOf", ()) or schema.get("oneOf", ()))


def _streams(spec: dict[str, Any]) -> bool:
    for response in (spec.get("responses") or {}).values():
        if isinstance(response, dict) and SSE in (response.get("content") or {}):
            return True
    return False


def operations(doc: Any, rules: UpstreamSettings, force_stream: list[str]) -> list[Operation]:
    """The operations of ``doc`` that ``rules`` allow, in the document's order.

    Raises ``ValueError`` when ``doc`` is not an OpenAPI document.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
        raise ValueError("the document has no `paths`: it is not an OpenAPI document")
    found: list[Operation] = []
    for path, item in doc["paths"].items():
        if not isinstance(path, str) or not path.startswith("/") or not isinstance(item, dict):
            continue
        if not rules.allows(path):
            continue
        shared = [p for p in item.get("parameters", ()) if isinstance(p, dict)]
        for method in METHODS:
            spec = item.get(method)
            if not isinstance(spec, dict):
                continue
            params = []
            for p in [*shared, *spec.get("parameters", ())]:
                if isinstance(p, dict) and p.get("in") in ("path", "query") and isinstance(p.get("name"), str):
                    params.append(
                        Param(p["name"], p["in"], bool(p.get("required", p["in"] == "path")), _is_list(p.get("schema")))
                    )
            body = spec.get("requestBody")
            content = body.get("content", {}) if isinstance(body, dict) else {}
            found.append(
                Operation(
                    path=path,
                    method=method.upper(),
                    spec=spec,
                    params=params,
                    has_body=bool(content),
                    stream=_streams(spec) or matches(force_stream, path),
                )
            )
    return found


def schemas(doc: Any) -> dict[str, Any]:
    """The document's ``components.schemas`` (empty when it has none)."""
    components = doc.get("components") if isinstance(doc, dict) else None
    found = components.get("schemas") if isinstance(components, dict) else None
    return found if isinstance(found, dict) else {}
