"""`framex run --adapter ray`: one access line per request, 499 for a client that left."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.server import Server

pytestmark = pytest.mark.ray


def access_lines(server: Server, rid: str, path: str, timeout: float = 60) -> list[str]:
    """Every access line of request ``rid`` for ``path`` (FrameX's, Serve's), once FrameX's is there.

    Serve's other lines about a request (a client that left) name its id but no path.
    """
    assert server.drain is not None
    matches = server.drain.wait_for(rf"framex\.access.*{re.escape(rid)}", 1, timeout)
    assert matches, f"no access line for {rid}:\n{server.drain.text()[-3000:]}"
    return [line for line in server.drain.text().splitlines() if rid in line and path in line]


def test_one_access_line_per_request_with_serves_request_id(ray_server_process: Server) -> None:
    first = httpx.get(f"{ray_server_process.url}/api/v1/kitchen/defaults", timeout=60)
    rid = first.headers["x-request-id"]
    # Later requests' lines: by then any second line of the first request has been forwarded too.
    for _ in range(3):
        later = httpx.get(f"{ray_server_process.url}/api/v1/kitchen/defaults", timeout=60)
        access_lines(ray_server_process, later.headers["x-request-id"], "/api/v1/kitchen/defaults")
    lines = access_lines(ray_server_process, rid, "/api/v1/kitchen/defaults")
    assert len(lines) == 1, "\n".join(lines)
    assert "GET /api/v1/kitchen/defaults 200" in lines[0]


def test_a_request_whose_client_left_is_logged_499(ray_server_process: Server) -> None:
    rid = f"left-{uuid.uuid4().hex}"
    with pytest.raises(httpx.ReadTimeout):
        # The job waits for a gate nobody opens: the client gives up and disconnects, and
        # Serve cancels the request in the ingress.
        httpx.get(
            f"{ray_server_process.url}/api/v1/kitchen/blocking",
            params={"tag": "x"},
            headers={"X-Request-ID": rid},
            timeout=httpx.Timeout(60, read=5),
        )
    lines = access_lines(ray_server_process, rid, "/api/v1/kitchen/blocking")
    assert len(lines) == 1, "\n".join(lines)
    assert "GET /api/v1/kitchen/blocking 499" in lines[0]


def test_the_startup_summary_names_ray_serve(ray_server_process: Server) -> None:
    assert ray_server_process.drain is not None
    assert ray_server_process.drain.wait_for(r"INFO framex\.run: FrameX is serving on http://127\.0\.0\.1:\d+", 1)
    text = ray_server_process.drain.text()
    assert "  backend: ray, Ray Serve, 1 HTTP ingress replica\n" in text
    assert "    kitchen 2.3.4: " in text
