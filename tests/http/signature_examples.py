"""Example requests to the `signatures` fixture plugin: every 422 shape, and a served request per route.

Shared by the in-process differential test and the real-server one. Each example names
what FastAPI's path answers (the problems of a 422, the types a handler got), so a case
that no longer makes the answer it is meant to make fails instead of passing unnoticed.
"""

from __future__ import annotations

import json
from dataclasses import replace

from tests.http.differential import Call
from tests.http.signature_calls import API, BOUNDARY, multipart

JSON = (("Content-Type", "application/json"),)

# -- every 422 shape, by example ----------------------------------------------------------

OWNER = {"id": 1, "email": "a@b"}
ITEM = {"name": "n", "price": "1.10", "owner": OWNER}
FORM = (("Content-Type", "application/x-www-form-urlencoded"),)
MULTIPART = (("Content-Type", f"multipart/form-data; boundary={BOUNDARY}"),)


def get(url: str, *headers: tuple[str, str]) -> Call:
    return Call("GET", API + url, tuple(headers))


def post(url: str, body: object, headers: tuple[tuple[str, str], ...] = JSON) -> Call:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Call("POST", API + url, headers, raw)


INVALID: dict[str, tuple[Call, list[tuple[tuple[str | int, ...], str]]]] = {
    "missing query": (get("/scalars?f=1&b=true&s=x"), [(("query", "i"), "missing")]),
    "scalar parsing": (
        get("/scalars?i=x&f=y&b=maybe&s=x"),
        [(("query", "i"), "int_parsing"), (("query", "f"), "float_parsing"), (("query", "b"), "bool_parsing")],
    ),
    "int from a decimal string": (get("/scalars?i=1.5&f=1&b=1&s="), [(("query", "i"), "int_parsing")]),
    "bounds and lengths": (
        get("/constraints?q-term=a&page=0&score=0&pageSize=7&code=abcd"),
        [
            (("query", "q-term"), "string_too_short"),
            (("query", "page"), "greater_than_equal"),
            (("query", "score"), "greater_than"),
            (("query", "pageSize"), "multiple_of"),
            (("query", "code"), "string_too_long"),
        ],
    ),
    "upper bounds": (
        get("/constraints?q-term=abcdefghi&page=101&score=1"),
        [
            (("query", "q-term"), "string_too_long"),
            (("query", "page"), "less_than_equal"),
            (("query", "score"), "less_than"),
        ],
    ),
    "pattern": (get("/constraints?q-term=AB"), [(("query", "q-term"), "string_pattern_mismatch")]),
    "alias, not the name": (get("/constraints?term=ab"), [(("query", "q-term"), "missing")]),
    "enum, datetime, uuid, decimal": (
        get("/typed?color=purple&when=now&uid=x&amount=abc&level=3"),
        [
            (("query", "color"), "enum"),
            (("query", "when"), "datetime_from_date_parsing"),
            (("query", "uid"), "uuid_parsing"),
            (("query", "amount"), "decimal_parsing"),
            (("query", "level"), "enum"),
        ],
    ),
    "date with a time": (get("/defaults?day=2024-02-29T01:00:00"), [(("query", "day"), "date_from_datetime_inexact")]),
    "list items by index": (
        get("/lists?ids=1&ids=x&ids=3&ids=y&colors=red&colors=pink"),
        [(("query", "ids", 1), "int_parsing"), (("query", "ids", 3), "int_parsing"), (("query", "colors", 1), "enum")],
    ),
    "missing list": (get("/lists"), [(("query", "ids"), "missing")]),
    "query model": (
        get("/query_model?order=up&zzz=1&limit=0"),
        [
            (("query", "limit"), "greater_than_equal"),
            (("query", "order"), "literal_error"),
            (("query", "zzz"), "extra_forbidden"),
        ],
    ),
    "path int": (get("/items/x"), [(("path", "item_id"), "int_parsing")]),
    "path bound and enum": (get("/pair/0/pink"), [(("path", "a"), "greater_than_equal"), (("path", "b"), "enum")]),
    "dependency": (
        get("/depends?offset=-1&limit=51"),
        [(("query", "offset"), "greater_than_equal"), (("query", "limit"), "less_than_equal")],
    ),
    "headers": (
        get("/headers", ("x-count", "x"), ("x-token", "ab")),
        [(("header", "x-count"), "int_parsing"), (("header", "x-token"), "string_too_short")],
    ),
    "cookies": (
        get("/cookies", ("Cookie", "visits=x; theme=pink")),
        [(("cookie", "visits"), "int_parsing"), (("cookie", "theme"), "enum")],
    ),
    "json cut short": (post("/model", b'{"name": '), [(("body", 9), "json_invalid")]),
    "json with trailing text": (post("/model", b'{"name": 1}xx'), [(("body", 11), "json_invalid")]),
    "no body": (post("/model", b""), [(("body",), "missing")]),
    "json null": (post("/model", b"null"), [(("body",), "model_attributes_type")]),
    "json list for a model": (post("/model", b"[]"), [(("body",), "model_attributes_type")]),
    "json scalar for a model": (post("/model", b"3"), [(("body",), "model_attributes_type")]),
    # FastAPI >= 0.132 (strict_content_type): JSON is read only under a JSON content type.
    "json without a content type": (post("/model", ITEM, ()), [(("body",), "model_attributes_type")]),
    "json as text/plain": (
        post("/model", ITEM, (("Content-Type", "text/plain"),)),
        [(("body",), "model_attributes_type")],
    ),
    "fields of a body model": (
        post("/model", {"name": "", "price": "1.234", "owner": {"id": 1.5, "email": "bad"}, "tags": ["a", 1, None]}),
        [
            (("body", "name"), "string_too_short"),
            (("body", "price"), "decimal_max_places"),
            (("body", "tags", 1), "string_type"),
            (("body", "tags", 2), "string_type"),
            (("body", "owner", "id"), "int_from_float"),
            (("body", "owner", "email"), "string_pattern_mismatch"),
        ],
    ),
    "list for a dict": (post("/dict", [1]), [(("body",), "dict_type")]),
    "dict for a list": (post("/list_body", {"a": 1}), [(("body",), "list_type")]),
    "body list items by index": (
        post("/list_body", [1, "x", 2.5]),
        [(("body", 1), "int_parsing"), (("body", 2), "int_from_float")],
    ),
    "two body parameters, not embedded": (
        post("/embedded", ITEM),
        [(("body", "item"), "missing"), (("body", "importance"), "missing")],
    ),
    "embed=True, not embedded": (post("/embed", OWNER), [(("body", "owner"), "missing")]),
    "form fields": (
        post("/form", b"age=x&agree=maybe", FORM),
        [(("body", "username"), "missing"), (("body", "age"), "int_parsing"), (("body", "agree"), "bool_parsing")],
    ),
    "file missing": (
        post("/upload", multipart([("note", None, None, b"n")]), MULTIPART),
        [(("body", "file"), "missing")],
    ),
    "every source at once": (
        post("/mix/0?q=x", {"id": "x"}, (*JSON, ("x-trace", "t"), ("Cookie", "session=s"))),
        [
            (("path", "item_id"), "greater_than_equal"),
            (("query", "q"), "int_parsing"),
            (("header", "x-trace"), "int_parsing"),
            (("cookie", "session"), "int_parsing"),
            (("body", "id"), "int_parsing"),
            (("body", "email"), "missing"),
        ],
    ),
    "every source missing": (
        post("/mix/1", b"", ()),
        [
            (("query", "q"), "missing"),
            (("header", "x-trace"), "missing"),
            (("cookie", "session"), "missing"),
            (("body",), "missing"),
        ],
    ),
}


# -- a served request for every route, and the other answers ---------------------------------

U = "6f1c1f4e-3b4a-4d8e-9a51-0e2a9c3b7d10"
FULL_ITEM = {**ITEM, "displayName": "D", "tags": ["t"], "note": None}
UPLOAD = multipart(
    [("file", "a.txt", "text/plain", b"hello"), ("note", None, None, b"n"), ("blob", "b", None, b"\0\xff")]
)
VALID: dict[str, tuple[Call, dict[str, str]]] = {
    "scalars": (get("/scalars?i=-3&f=1e3&b=on&s=a+b%2B%C3%A9"), {"i": "int", "f": "float", "b": "bool", "s": "str"}),
    "plus, nothing percent-encoded": (get("/scalars?i=1&f=1&b=1&s=a+b&s=c+d"), {"s": "str"}),
    "typed": (
        get(f"/typed?color=green&when=2024-02-29T12:30:00Z&uid={U.upper()}&amount=1.10&level=2"),
        {"color": "Color", "when": "datetime", "uid": "UUID", "amount": "Decimal", "level": "Level"},
    ),
    "defaults": (get("/defaults"), {"n": "int", "opt": "NoneType", "day": "NoneType", "color": "Color"}),
    "lists": (get("/lists?ids=1&ids=2&maybe=0.5&colors=blue"), {"ids": "list", "tags": "list", "maybe": "list"}),
    "constraints": (get("/constraints?q-term=abc&pageSize=15"), {"term": "str", "size": "int", "code": "NoneType"}),
    "query model": (get("/query_model?limit=3&tags=a&tags=b"), {"filters": "Filters"}),
    "path int": (get("/items/7"), {"item_id": "int"}),
    "path str": (get("/names/a%20b"), {"name": "str"}),
    "two path params": (get("/pair/2/red?extra=3"), {"a": "int", "b": "Color", "extra": "int"}),
    "path convertor": (get("/files/a/b/c.txt"), {"rest": "str"}),
    "headers": (
        get("/headers", ("User-Agent", "ua"), ("x-count", "3"), ("x-tags", "a"), ("x-tags", "b"), ("raw_name", "r")),
        {"user_agent": "str", "x_count": "int", "x_tags": "list", "raw_name": "str", "x_token": "str"},
    ),
    "cookies": (
        get("/cookies", ("Cookie", "session=s; visits=2; theme=blue; auth-token=t")),
        {"session": "str", "visits": "int", "theme": "Color", "token": "str"},
    ),
    "body model": (post("/model", FULL_ITEM), {"item": "Item"}),
    "body and query": (post("/model_query?dry_run=yes&limit=10", FULL_ITEM), {"item": "Item", "dry_run": "bool"}),
    "two body parameters": (post("/embedded", {"item": ITEM, "importance": 2}), {"item": "Item", "importance": "int"}),
    "embed=True": (post("/embed", {"owner": OWNER}), {"owner": "Owner"}),
    "plain dict": (post("/dict", {"a": [1, {"b": None}]}), {"payload": "dict"}),
    "list body": (post("/list_body", [1, 2]), {"values": "list"}),
    "optional body given": (post("/optional_body", OWNER), {"owner": "Owner"}),
    "optional body left out": (post("/optional_body", b"", ()), {"owner": "NoneType"}),
    "form": (post("/form", b"username=u&age=3&tags=a&tags=b&agree=on", FORM), {"tags": "list", "agree": "bool"}),
    "files": (post("/upload", UPLOAD, MULTIPART), {"note": "str", "blob": "bytes"}),
    "sync handler": (get("/sync?x=1&z=1&z=2"), {"x": "int", "y": "str", "z": "list"}),
    "dependency": (get("/depends?offset=3&q=z"), {"page": "dict", "q": "str"}),
    "every source": (
        post("/mix/1?q=2", OWNER, (*JSON, ("x-trace", "5"), ("Cookie", "session=6"))),
        {"item_id": "int", "owner": "Owner", "q": "int", "x_trace": "int", "session": "int"},
    ),
    "chunked body": (replace(post("/model", FULL_ITEM), chunks=4), {"item": "Item"}),
}

OTHER_ANSWERS: list[Call] = [
    get("/nowhere"),
    Call("DELETE", f"{API}/scalars"),
    Call("HEAD", f"{API}/defaults"),
    get("/defaults/?n=1"),
    get("/missing/k"),
    get("/missing/k?detail_as=dict"),
    get("/guarded", ("Authorization", "Bearer wrong")),
    get("/redirect?to=/x&code=303"),
    get("/headers_out?value=v&age=5"),
    post("/dict", b"\xff{}"),
    get("/boom?x=1"),
    get("/boom", ("X-Request-ID", "trace-1")),
    get("/stream?n=2&word=w"),
    get("/stream?n=1&fail=true"),
    get("/raw?x=2&names=a"),
    Call("POST", f"{API}/request?x=2&x=3", (("Cookie", "a=b"),), b"raw body"),
    post("/created", {"name": "n"}),
    replace(post("/form", b"username=u&tags=a&tags=b", FORM), chunks=3),
    replace(post("/upload", UPLOAD, MULTIPART), chunks=5),
]
"""Answers other than 200 and 422, and the other handler shapes."""
