"""The compiled request path answers exactly as FastAPI's path does.

Two apps serve the `signatures` fixture plugin, one with `server.compiled_routes: true`,
one with false. Generated requests (tests/http/signature_calls.py) and hand-written
ones (tests/http/signature_examples.py) go to both; status, headers and body must be
the same, byte for byte once the timestamp and a generated request id are set aside.
Every handler echoes what it was called with (value, type, repr), so equal bodies also
mean the handlers got the same Python values.

Until the compiled path exists both apps take FastAPI's path and these tests pass by
construction; `test_the_comparison_sets_aside_only_the_timestamp_and_a_generated_id`
shows the comparison does see the differences that matter.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import framex
from framex.container import close_container
from tests.http.differential import PLUGIN, Call, Twins, answer, assert_same, in_process
from tests.http.signature_calls import API, ROUTES
from tests.http.signature_examples import INVALID, VALID, get, post

UNLIMITED = {"max_body_bytes": None}
"""No body limit: with one, a chunked body takes FastAPI's path (the limit counts its bytes
there); without one the compiled endpoint reads the pieces itself. Nested, because a
`server__max_body_bytes=None` override would be dropped, as every None override is."""


@pytest.fixture(scope="module")
def twins() -> Iterator[Twins]:
    with in_process(True, server=UNLIMITED) as compiled, in_process(False, server=UNLIMITED) as fastapi:
        yield Twins(compiled, fastapi)


@pytest.fixture
def collect_garbage() -> Iterator[None]:
    yield
    # A request path that leaves an upload's temporary file open shows up as a
    # ResourceWarning when the file is collected: here, in the test that caused it.
    gc.collect()


@pytest.mark.usefixtures("collect_garbage")
@pytest.mark.parametrize("route", sorted(ROUTES))
@settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_generated_requests_get_the_same_answer(twins: Twins, route: str, data: st.DataObject) -> None:
    twins.check(data.draw(ROUTES[route], label=route))


# -- examples: every 422 shape, a served request for every route, the other answers -----------


@pytest.mark.parametrize("case", INVALID)
def test_every_422_shape_is_the_same(twins: Twins, case: str) -> None:
    call, problems = INVALID[case]
    compiled, _ = twins.check(call)
    assert compiled.status == 422
    body = compiled.json()
    assert [(tuple(p["loc"]), p["type"]) for p in body["data"]] == problems
    first = body["data"][0]
    assert body["message"] == f"Invalid request: `{'.'.join(map(str, first['loc']))}`: {first['msg']}"


@pytest.mark.parametrize("case", VALID)
def test_every_route_serves_the_same_values(twins: Twins, case: str) -> None:
    call, types = VALID[case]
    compiled, _ = twins.check(call)
    assert compiled.status == 200, compiled.body
    data = compiled.json()["data"]
    assert {name: data[name]["type"] for name in types} == types


def test_raw_response_request_handler_and_status_code(twins: Twins) -> None:
    raw, _ = twins.check(get("/raw?x=2&names=a"))
    assert raw.json() == {
        "x": {"value": 2, "type": "int", "repr": "2"},
        "names": {"value": ["a"], "type": "list", "repr": "['a']"},
    }
    request, _ = twins.check(Call("POST", f"{API}/request?x=2&x=3", (("Cookie", "a=b"),), b"raw body"))
    assert request.json()["data"]["body"] == "raw body"
    created, _ = twins.check(post("/created", {"name": "n"}))
    assert created.status == 201


SERVER_ERROR = "Internal server error. Quote request id <request-id> when reporting it."


def test_errors_redirects_and_response_headers(twins: Twins) -> None:
    assert twins.check(get("/nowhere"))[0].status == 404
    assert twins.check(Call("DELETE", f"{API}/scalars"))[0].status == 405
    assert twins.check(Call("HEAD", f"{API}/defaults"))[0].status == 405
    slash, _ = twins.check(get("/defaults/?n=1"))
    assert slash.status == 307 and ("location", "http://testserver/api/v1/sig/defaults?n=1") in slash.headers
    missing, _ = twins.check(get("/missing/k"))
    assert missing.status == 404 and ("x-missing", "k") in missing.headers
    assert twins.check(get("/missing/k?detail_as=dict"))[0].json()["data"] == {"key": "k", "reason": "absent"}
    guarded, _ = twins.check(get("/guarded", ("Authorization", "Bearer wrong")))
    assert guarded.status == 401 and ("www-authenticate", "Bearer") in guarded.headers
    moved, _ = twins.check(get("/redirect?to=/x&code=303"))
    assert moved.status == 303 and ("location", "/x") in moved.headers
    cached, _ = twins.check(get("/headers_out?value=v&age=5"))
    assert [v for k, v in cached.headers if k == "set-cookie"] == [
        "last=v; HttpOnly; Max-Age=5; Path=/; SameSite=lax",
        "seen=1; Path=/api; SameSite=lax",
    ]
    assert ("etag", '"v"') in cached.headers and ("cache-control", "max-age=5") in cached.headers
    assert twins.check(post("/dict", b"\xff{}"))[0].status == 400  # JSON that is not text


def test_a_500_quotes_the_request_id(twins: Twins) -> None:
    generated, _ = twins.check(get("/boom?x=1"))
    assert generated.status == 500
    assert generated.json() | {"timestamp": None} == {
        "status": 500,
        "message": SERVER_ERROR,
        "timestamp": None,
        "data": None,
        "request_id": "<request-id>",
    }
    given, _ = twins.check(get("/boom", ("X-Request-ID", "trace-1")))
    assert given.json()["message"] == SERVER_ERROR.replace("<request-id>", "trace-1")
    assert ("x-request-id", "trace-1") in given.headers


def test_streams_are_the_same_events(twins: Twins) -> None:
    events, _ = twins.check(get("/stream?n=2&word=w"))
    assert ("content-type", "text/event-stream; charset=utf-8") in events.headers
    assert events.body.count(b"data: ") == 3 and events.body.endswith(b"event: done\ndata: w\n\n")
    failed, _ = twins.check(get("/stream?n=1&fail=true", ("X-Request-ID", "s-1")))
    assert failed.body.endswith(
        b'event: error\ndata: {"status":500,"message":"Internal server error","request_id":"s-1"}\n\n'
    )
    assert twins.check(get("/stream?n=99"))[0].status == 422  # checked before the stream starts


# -- the body limit, and nothing else changes ----------------------------------------------


def test_the_body_limit_answers_the_same() -> None:
    with (
        in_process(True, server__max_body_bytes=64) as compiled,
        in_process(False, server__max_body_bytes=64) as fastapi,
    ):
        small = Twins(compiled, fastapi)
        too_big = post("/dict", {"a": "x" * 100})
        assert small.check(too_big)[0].status == 413
        assert small.check(replace(too_big, chunks=5))[0].status == 413  # counted while it is read
        assert small.check(post("/dict", {"a": "x"}))[0].status == 200


def test_chunked_bodies_answer_the_same(twins: Twins) -> None:
    bodies = [VALID[name][0] for name in ("body model", "two body parameters", "list body", "every source")]
    bodies += [INVALID[name][0] for name in ("json cut short", "fields of a body model", "every source at once")]
    for call in bodies:
        for chunks in (2, 5):
            twins.check(replace(call, chunks=chunks))


def test_a_route_with_depends_takes_fastapis_path() -> None:
    container = framex.create_container(None, load_plugins=[PLUGIN], load_builtin_plugins=[])
    try:
        framex.create_app(container)
        assert container.compiled_routes().fallbacks["GET /api/v1/sig/depends"] == "it uses Depends()"
    finally:
        close_container(container)
    # Its answers are compared with the others' (ROUTES["depends"], VALID["dependency"]).


def test_the_openapi_document_is_the_same(twins: Twins) -> None:
    document, _ = twins.check(Call("GET", "/api/v1/openapi.json"))
    paths = document.json()["paths"]
    assert f"{API}/mix/{{item_id}}" in paths and f"{API}/files/{{rest}}" in paths
    # A route added to the plugin needs its own request strategy.
    assert len([path for path in paths if path.startswith(API)]) == len(ROUTES)
    assert twins.check(Call("GET", "/docs"))[0].status == 200


# -- the comparison itself ------------------------------------------------------------------

ENVELOPE = b'{"status":200,"message":"success","timestamp":"%s","data":{"a":1,"b":2}}'


def response(body: bytes, *headers: tuple[str, str]) -> httpx.Response:
    return httpx.Response(200, headers=[("content-type", "application/json"), *headers], content=body)


PLAIN = Call("GET", "/x")


def compare(one: httpx.Response, other: httpx.Response, call: Call = PLAIN) -> None:
    assert_same(answer(one, call), answer(other, call), call)


def test_the_comparison_sets_aside_only_the_timestamp_and_a_generated_id() -> None:
    at = (b"2026-01-01T00:00:00.000+00:00", b"2026-01-01T00:00:01.999+00:00")
    compare(response(ENVELOPE % at[0]), response(ENVELOPE % at[1]))
    with pytest.raises(AssertionError):  # the same JSON, written differently
        compare(response(ENVELOPE % at[0]), response(ENVELOPE.replace(b'"a":1,"b":2', b'"b":2,"a":1') % at[0]))
    with pytest.raises(AssertionError):
        compare(response(ENVELOPE % at[0]), response(ENVELOPE % at[0], ("cache-control", "no-store")))
    ids = ("0" * 32, "f" * 32)
    quoted = b'{"status":500,"message":"Quote request id %s.","timestamp":"t","data":null,"request_id":"%s"}'
    compare(
        response(quoted % (ids[0].encode(), ids[0].encode()), ("x-request-id", ids[0])),
        response(quoted % (ids[1].encode(), ids[1].encode()), ("x-request-id", ids[1])),
    )
    with pytest.raises(AssertionError):  # the body quotes an id other than the header's
        compare(
            response(quoted % (ids[0].encode(), ids[0].encode()), ("x-request-id", ids[0])),
            response(quoted % (ids[0].encode(), ids[0].encode()), ("x-request-id", ids[1])),
        )
    with pytest.raises(AssertionError):  # the client's own id is never set aside
        call = Call("GET", "/x", (("X-Request-ID", "mine"),))
        compare(response(b"{}", ("x-request-id", "mine")), response(b"{}", ("x-request-id", ids[0])), call)
