"""Mirrored routes: what a client sends through the proxy reaches the upstream as sent,
and what the upstream answers comes back as answered (streams as they flow)."""

from __future__ import annotations

import hashlib
import os
import time

import httpx

from tests.builtins.proxy.conftest import CLIENT_KEY, UPSTREAM_KEY
from tests.server import Server


def test_path_and_query_parameters_arrays_included(proxy: httpx.Client, plain_upstream: Server) -> None:
    params = [("tags", "a"), ("tags", "b c"), ("q", "x/y")]
    through = proxy.get("/api/v1/items/7", params=params)
    direct = httpx.get(f"{plain_upstream.url}/api/v1/items/7", params=params)
    assert through.status_code == direct.status_code == 200
    assert through.json() == direct.json() == {"item_id": 7, "tags": ["a", "b c"], "q": "x/y"}


def test_json_body_and_the_upstream_status(proxy: httpx.Client) -> None:
    item = {"name": "lamp", "price": 12.5, "tags": ["home"]}
    response = proxy.post("/api/v1/items", json=item)
    assert response.status_code == 201
    assert response.json() == item
    invalid = proxy.post("/api/v1/items", json={"name": "lamp"})
    assert invalid.status_code == 422  # the upstream's own validation answer, passed back
    assert invalid.json()["detail"][0]["loc"] == ["body", "price"]


def test_form_and_multipart_bodies_with_a_file(proxy: httpx.Client) -> None:
    assert proxy.post("/api/v1/form", data={"name": "n", "count": "3"}).json() == {"name": "n", "count": 3}
    payload = os.urandom(300_000)  # larger than max_body_in_memory: sent upstream as a stream
    response = proxy.post("/api/v1/upload", files={"file": ("blob.bin", payload)}, data={"note": "big"})
    assert response.status_code == 200
    assert response.json() == {
        "filename": "blob.bin",
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "note": "big",
    }


def test_sse_is_streamed_chunk_by_chunk(proxy: httpx.Client) -> None:
    # The upstream sends its second event only after /release; a buffering proxy would
    # hold the first one back until then, and this read would time out.
    with proxy.stream("GET", "/api/v1/events", timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines) == 'data: {"n": 1}'
        released = proxy.post("/api/v1/release")
        assert released.status_code == 200
        rest = [line for line in lines if line]
    assert rest == ['data: {"n": 2}']


def test_a_client_leaving_a_stream_stops_the_upstream_stream(proxy_server: Server, plain_upstream: Server) -> None:
    with (
        httpx.Client(base_url=proxy_server.url, timeout=10) as client,
        client.stream("GET", "/api/v1/endless") as response,
    ):
        assert next(response.iter_lines()) == "data: 1"
    # The client closed its connection: the proxy must close the upstream's stream too.
    deadline = time.monotonic() + 20
    closed = False
    while not closed and time.monotonic() < deadline:
        closed = httpx.get(f"{plain_upstream.url}/api/v1/endless_closed").json()
        time.sleep(0.05)
    assert closed


def test_disabled_and_unlisted_paths_are_not_mirrored(proxy: httpx.Client) -> None:
    assert proxy.get("/api/v1/private").status_code == 404
    assert proxy.get("/internal/stats").status_code == 404


def test_framex_envelopes_pass_through_once(proxy: httpx.Client, framex_upstream: Server) -> None:
    through = proxy.get("/api/v1/remote_greet", params={"name": "ada"}).json()
    direct = httpx.get(f"{framex_upstream.url}/api/v1/remote_greet", params={"name": "ada"}).json()
    assert through["data"] == direct["data"] == "hello ada"
    assert through.keys() == direct.keys()


def test_upstream_keys_are_sent_and_client_keys_are_not(proxy: httpx.Client, proxy_server: Server) -> None:
    assert proxy.get("/api/v1/guarded").json()["data"] == "inside"
    seen = proxy.get("/api/v1/headers", headers={"Authorization": CLIENT_KEY, "X-Custom": "kept"}).json()
    assert seen == {"authorization": None, "x_custom": "kept"}
    assert proxy.get("/api/v1/headers").status_code == 401  # the proxying service's own rule


def test_errors_of_the_upstream_are_passed_back(proxy: httpx.Client) -> None:
    response = proxy.get("/api/v1/fails")
    assert response.status_code == 418
    assert response.json() == {"detail": "I'm a teapot"}


def test_a_silent_upstream_is_a_504_and_the_service_keeps_serving(proxy: httpx.Client) -> None:
    response = proxy.get("/api/v1/stuck")
    assert response.status_code == 504
    body = response.json()
    assert body["status"] == 504
    assert "did not answer in time" in body["message"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert proxy.get("/api/v1/items/1").status_code == 200


def test_the_openapi_document_has_the_upstreams_operations_and_schemas(proxy: httpx.Client) -> None:
    doc = proxy.get("/api/v1/openapi.json").json()
    paths = doc["paths"]
    assert {"/api/v1/items/{item_id}", "/api/v1/items", "/api/v1/upload", "/api/v1/remote_greet"} <= paths.keys()
    assert "/api/v1/private" not in paths
    assert "/api/v1/user/greet" in paths  # the service's own plugin
    body = paths["/api/v1/items"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Item"}
    assert doc["components"]["schemas"]["Item"]["required"] == ["name", "price"]
    query = {p["name"]: p for p in paths["/api/v1/items/{item_id}"]["get"]["parameters"]}
    assert query["tags"]["schema"]["type"] == "array"


def test_keys_never_reach_the_logs(proxy: httpx.Client, proxy_server: Server) -> None:
    # Last in this module: it stops the proxying service to read all its output.
    proxy.get("/api/v1/guarded")
    proxy.get("/api/v1/headers", headers={"Authorization": CLIENT_KEY})
    proxy_server.stop()
    output = proxy_server.output()
    assert "framex.access" in output  # the access log was written, so the check below means something
    assert UPSTREAM_KEY not in output
    assert CLIENT_KEY not in output
