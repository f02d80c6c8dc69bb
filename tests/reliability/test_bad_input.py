"""Oversized and malformed requests get a 4xx (or a closed connection), never a 5xx or a crash.

Some inputs that look malformed are valid and served: JSON with a byte-order mark or in
UTF-16 (RFC 8259 readers may accept both), duplicate keys (the last one wins); HTTP/0.9
request lines and very long headers (uvicorn's parser accepts them). For raw HTTP the
tests ask for any answer below 500.
"""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framex.config import ServerSettings
from tests.reliability.conftest import BODY_LIMIT, CI, Service, Sizes, rss_kib

JSON_ROUTES = ["/api/v1/kitchen/order", "/api/v1/demo/total", "/api/v1/echo_model?message=m", "/api/v1/kitchen/both"]


def exchange(service: Service, data: bytes, *, half_close: bool = True, timeout: float = 30) -> int | None:
    """Send raw bytes; return the status of the answer, or None if the server closed without one.

    ``half_close`` ends the request stream after ``data``, so a server waiting for more
    sees the end at once instead of after a timeout.
    """
    address = urlsplit(service.url)
    assert address.hostname is not None and address.port is not None
    received = b""
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except ConnectionResetError:
            pass
    if not received:
        return None
    status_line = received.split(b"\r\n", 1)[0].split()
    assert status_line[0].startswith(b"HTTP/1."), received[:200]
    return int(status_line[1])


def request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(body: bytes, size: int = 65536) -> bytes:
    parts = [
        f"{len(body[i : i + size]):x}\r\n".encode() + body[i : i + size] + b"\r\n" for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


def assert_serving(service: Service) -> None:
    assert service.alive()
    assert httpx.get(f"{service.url}/health").text == "ok"


# -- oversized ------------------------------------------------------------------------------


def test_default_body_limit() -> None:
    assert ServerSettings().max_body_bytes == 16 * 1024 * 1024


def test_body_over_the_limit_is_refused_before_it_is_read(local_service: Service) -> None:
    before = rss_kib(local_service.pid)
    headers = {"Content-Type": "application/json", "Content-Length": str(64 * BODY_LIMIT)}
    # Only the start of the announced 64 MiB is sent: the answer must not wait for the rest.
    status = exchange(local_service, request("POST", JSON_ROUTES[0], headers, b"[" * 65536), half_close=False)
    assert status == 413
    headers["Content-Length"] = str(BODY_LIMIT + 1)
    status = exchange(local_service, request("POST", JSON_ROUTES[0], headers, b" " * (BODY_LIMIT + 1)))
    assert status == 413
    assert rss_kib(local_service.pid) - before < 32 * 1024
    assert_serving(local_service)


def test_chunked_body_over_the_limit_is_refused(local_service: Service) -> None:
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    body = chunked(b"[" + b"1," * BODY_LIMIT + b"1]")
    assert exchange(local_service, request("POST", "/api/v1/demo/total", headers, body)) == 413
    assert_serving(local_service)


def test_413_is_the_envelope_and_a_body_at_the_limit_is_served(local_service: Service) -> None:
    order = json.dumps({"item": "tea", "quantity": 2}).encode()
    at_limit = order + b" " * (BODY_LIMIT - len(order))
    with httpx.Client(base_url=local_service.url, timeout=30) as client:
        served = client.post("/api/v1/kitchen/order", content=at_limit, headers={"Content-Type": "application/json"})
        assert served.status_code == 200 and served.json()["data"] == {"item": "tea", "quantity": 4}
        refused = client.post(
            "/api/v1/kitchen/order",
            content=iter([at_limit, b" "]),  # chunked: counted while it is read
            headers={"Content-Type": "application/json", "X-Request-ID": "big-1"},
        )
    assert refused.status_code == 413
    body = refused.json()
    assert body["status"] == 413 and body["data"] is None
    assert body["message"] == f"Request body too large: the limit is {BODY_LIMIT} bytes (`server.max_body_bytes`)."
    assert refused.headers["x-request-id"] == "big-1"


def test_body_limit_off() -> None:
    from fastapi.testclient import TestClient

    import framex

    # A None override means "not given"; null is set through the nested form.
    container = framex.create_container(None, load_plugins=["plugins"], server={"max_body_bytes": None})
    assert container.settings().server.max_body_bytes is None
    with TestClient(framex.create_app(container)) as client:
        values = list(range(200_000))  # about 1.3 MB
        assert client.post("/api/v1/demo/total", json=values).json()["data"] == sum(values)


# -- malformed bodies -----------------------------------------------------------------------

MALFORMED = {
    "empty": b"",
    "truncated": b'{"item": "tea"',
    "not-json": b"item=tea&quantity=1",
    "invalid-utf8": b'{"item": "\xff\xfe"}',
    "nan": b'{"item": "tea", "quantity": NaN}',
    "infinity": b"[Infinity, -Infinity]",
    "huge-int": b"[" + b"9" * 5000 + b"]",
    "huge-float": b"[1e999999]",
    "deep-nesting": b"[" * 100_000 + b"]" * 100_000,
    "null": b"null",
    "nul-bytes": b'{"item": "\x00\x00"}',
    "lone-surrogate": b'{"item": "\\ud800"}',
    "wrong-types": b'{"item": ["tea"], "quantity": {"n": 1}}',
}
VALID_ODDITIES = {
    "utf8-bom": b'\xef\xbb\xbf{"item": "tea"}',
    "utf16": '{"item": "tea"}'.encode("utf-16"),
    "duplicate-keys": b'{"item": "a", "item": "b", "quantity": 1}',
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize("route", JSON_ROUTES)
def test_malformed_json_bodies_are_4xx(local_service: Service, route: str, body: bytes) -> None:
    response = httpx.post(f"{local_service.url}{route}", content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.json()["status"] == response.status_code  # the envelope, whatever went wrong


@pytest.mark.parametrize("body", VALID_ODDITIES.values(), ids=VALID_ODDITIES.keys())
def test_odd_but_valid_json_bodies_are_served(local_service: Service, body: bytes) -> None:
    response = httpx.post(
        f"{local_service.url}/api/v1/kitchen/order", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text[:300]
    assert response.json()["data"]["quantity"] == 2


def test_any_body_and_content_type_is_4xx_or_served(local_service: Service, sizes: Sizes) -> None:
    content_types = st.sampled_from(
        [
            "application/json",
            "application/json; charset=latin-1",
            "application/vnd.api+json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
        ]
    )
    bodies = (
        st.binary(max_size=200)
        | st.text(max_size=200).map(str.encode)
        | st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
        ).map(lambda value: json.dumps(value).encode())
    )

    with httpx.Client(base_url=local_service.url, timeout=30) as client:

        @settings(
            max_examples=sizes.body_examples,
            deadline=None,
            database=None,
            derandomize=sizes is CI,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(route=st.sampled_from(JSON_ROUTES), body=bodies, content_type=content_types)
        def check(route: str, body: bytes, content_type: str) -> None:
            response = client.post(route, content=body, headers={"Content-Type": content_type})
            assert response.status_code < 500, (response.status_code, response.text[:300])
            assert response.json()["status"] == response.status_code

        check()
    assert_serving(local_service)


# -- malformed HTTP -------------------------------------------------------------------------

GARBAGE = {
    "not-http": b"hello there\r\n\r\n",
    "binary": bytes(range(256)) * 4,
    "tls-client-hello": bytes.fromhex("160301006c0100006803035a"),
    "http2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "no-colon-header": b"GET /health HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n",
    "bad-content-length": request("POST", "/api/v1/demo/total", {"Content-Length": "abc"}, b"[1]"),
    "negative-content-length": request("POST", "/api/v1/demo/total", {"Content-Length": "-1"}, b"[1]"),
    "two-content-lengths": request(
        "POST", "/api/v1/demo/total", {"Content-Length": "3", "content-length": "4"}, b"[1]"
    ),
    "short-body": request(
        "POST", "/api/v1/demo/total", {"Content-Length": "100", "Content-Type": "application/json"}, b"[1"
    ),
    "bad-chunk-size": request(
        "POST", "/api/v1/demo/total", {"Transfer-Encoding": "chunked"}, b"zz\r\n[1]\r\n0\r\n\r\n"
    ),
    "unfinished-chunks": request("POST", "/api/v1/demo/total", {"Transfer-Encoding": "chunked"}, b"10\r\n[1"),
    "huge-header": request("GET", "/health", {"X-Big": "x" * 200_000}),
    "huge-url": request("GET", "/api/v1/echo?message=" + "x" * 200_000, {}),
    "bad-percent-encoding": request("GET", "/api/v1/echo?message=%ff%fe%zz", {}),
    "nul-in-path": b"GET /api/v1/ec\x00ho?message=a HTTP/1.1\r\nHost: x\r\n\r\n",
    "unknown-method": request("BREW", "/api/v1/echo?message=a", {}),
    "http-0.9": b"GET /health\r\n\r\n",
    "bad-version": b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n",
    "bad-header-value": request("POST", "/api/v1/demo/total", {"Content-Type": "\x7f", "Content-Length": "3"}, b"[1]"),
    "headers-only-half": b"GET /health HTTP/1.1\r\nHost: 127.0.",
}


@pytest.mark.parametrize("data", GARBAGE.values(), ids=GARBAGE.keys())
def test_malformed_http_is_answered_below_500_or_closed(local_service: Service, data: bytes) -> None:
    status = exchange(local_service, data)
    assert status is None or status < 500, status
    assert_serving(local_service)
