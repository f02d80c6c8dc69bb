"""Faults: worker processes that die, over HTTP and on Ray; the service keeps serving.

Covered elsewhere and not repeated here: a plugin whose `on_start` raises stops
`framex run` naming it (tests/test_cli.py::test_failing_on_start_stops_startup_naming_it,
tests/test_container.py); a handler that raises answers the 500 envelope and the service
keeps serving (tests/http/test_app.py::test_500_hides_exception_text_and_gives_request_id,
locally and on Ray Serve), and under load in test_load.py (every 50th request).
"""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from framex.container import Container
from framex.errors import RemoteError
from tests.reliability import faulty
from tests.reliability.conftest import Service, Sizes


def assert_500_envelope(response: httpx.Response) -> None:
    assert response.status_code == 500
    body = response.json()
    assert body["status"] == 500 and body["data"] is None
    assert body["request_id"] == response.headers["x-request-id"]
    assert "did not finish" not in response.text  # the error's text stays in the log


async def test_process_worker_death_over_http(local_service: Service, sizes: Sizes) -> None:
    async with httpx.AsyncClient(base_url=local_service.url, timeout=60) as client:
        for round_ in range(sizes.fault_rounds):
            died = await client.get("/api/v1/faulty/die", headers={"X-Request-ID": f"die-{round_}"})
            assert_500_envelope(died)
            # The next calls run on a new pool.
            answers = await asyncio.gather(*(client.get("/api/v1/faulty/work", params={"x": x}) for x in range(4)))
            assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
            assert [a.json()["data"]["x"] for a in answers] == [0, 3, 6, 9]
            assert local_service.pid not in {a.json()["data"]["pid"] for a in answers}
        # Each death is logged with the call that failed and its request id.
        logged = local_service.log.wait_for(
            r"ERROR framex\.http \[die-(\d+)\]: GET /api/v1/faulty/die failed", sizes.fault_rounds
        )
        assert {m[1] for m in logged} == {str(r) for r in range(sizes.fault_rounds)}
        assert "`die` did not finish: the worker process running it died" in local_service.log.text()
        assert (await client.get("/health")).text == "ok"
    assert local_service.alive()


async def test_process_worker_death_while_other_calls_run(local_service: Service) -> None:
    """Calls in flight on the pool when a worker dies may fail with it (500s); none hangs, the next ones run."""
    async with httpx.AsyncClient(base_url=local_service.url, timeout=60) as client:
        answers = await asyncio.gather(
            *(client.get("/api/v1/faulty/work", params={"x": x}) for x in range(3)),
            client.get("/api/v1/faulty/die"),
            *(client.get("/api/v1/faulty/work", params={"x": x}) for x in range(3, 6)),
        )
        print(f"\nstatuses with a worker dying among them: {[a.status_code for a in answers]}")
        assert answers[3].status_code == 500
        for answer in answers:
            assert answer.status_code in (200, 500), answer.text
            if answer.status_code == 500:
                assert_500_envelope(answer)
        if any(a.status_code == 500 for a in answers[:3] + answers[4:]):
            # Python's process pool fails every call in flight with the dying worker; the error says so.
            # The log is written by a thread of the server: wait for the line, do not race it.
            said = "`work` did not finish: the worker process running it died, or another worker of the pool did"
            assert local_service.log.wait_for(re.escape(said), 1), local_service.log.text()[-3000:]
        after = await asyncio.gather(*(client.get("/api/v1/faulty/work", params={"x": x}) for x in range(4)))
        assert [a.status_code for a in after] == [200] * 4


@pytest.mark.ray
async def test_ray_worker_death(ray_container: Container, sizes: Sizes) -> None:
    for _ in range(sizes.fault_rounds):
        results = await asyncio.gather(
            faulty.die.remote(), *(faulty.work.remote(x) for x in range(3)), return_exceptions=True
        )
        died, *others = results
        assert isinstance(died, RemoteError), died
        assert "`die` did not finish: the Ray worker running it died" in str(died)
        assert [r["x"] for r in others if isinstance(r, dict)] == [0, 3, 6], others  # other workers are unaffected
        assert [r["x"] for r in await faulty.work.map(range(4))] == [0, 3, 6, 9]
