"""The apps ``bench.request_path`` serves answer as the benchmark expects: a broken bench fails here, in CI."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bench.apps.order import SAMPLE
from bench.request_path import CHECKS, parse_args, post_script, scenarios
from bench.request_path_verdicts import Goal, judge
from framex.container import Container

FRAMEX_SCENARIOS = ("query", "order", "blocking", "call")
PLAIN_APPS = {
    "bench.apps.path_fastapi": ("query", "order", "blocking"),
    "bench.apps.path_starlette": ("query",),
    "bench.apps.path_asgi": ("query",),
}


def answers(client: TestClient, scenario: str, envelope: bool) -> None:
    """Every check of ``scenario`` passes on ``client`` (the checks the benchmark makes before measuring)."""
    for method, path, body, status, expected in CHECKS[scenario]:
        response = client.request(method, path, json=body)
        assert response.status_code == status, (path, response.text)
        if expected is not None:
            got = response.json()
            assert (got["data"] if envelope else got) == expected


@pytest.fixture(params=[True, False], ids=["compiled", "fastapi_path"])
def framex_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    # As bench/apps/framex_app.py builds it, with either request path.
    return {
        "load_plugins": ["bench.apps.path_plugin", "bench.apps.path_caller"],
        "load_builtin_plugins": [],
        "server__compiled_routes": request.param,
    }


@pytest.mark.parametrize("scenario", FRAMEX_SCENARIOS)
def test_framex_app_answers(framex_client: TestClient, scenario: str) -> None:
    answers(framex_client, scenario, envelope=True)


def test_framex_features_route(framex_client: TestClient, framex_container: Container) -> None:
    found = framex_client.get("/api/v1/features").json()["data"]
    assert found["console"] is True  # the default
    assert found["compiled_path"] is True
    if framex_container.settings().server.compiled_routes:
        assert found["compiled"] >= 4 and found["fallbacks"] == {}  # every bench route takes the compiled path


@pytest.mark.parametrize(("module", "scenario"), [(m, s) for m, names in PLAIN_APPS.items() for s in names])
def test_plain_apps_answer(module: str, scenario: str) -> None:
    app = importlib.import_module(module).app
    with TestClient(app) as client:  # runs the lifespan (FastAPI sizes its thread limiter there)
        answers(client, scenario, envelope=False)


def test_bare_asgi_app_answers_404_elsewhere() -> None:
    from bench.apps.path_asgi import app

    with TestClient(app) as client:
        assert client.get("/api/v1/other").status_code == 404
        assert client.get("/api/v1/q").status_code == 422  # no x


def test_wrk_post_script_has_the_body_and_the_reporter(tmp_path: Path) -> None:
    script = post_script(tmp_path).read_text()
    assert 'wrk.method = "POST"' in script and '"quantity": 3' in script and str(SAMPLE["name"]) in script
    assert "done = function(summary, latency, requests)" in script


def test_quick_profile_and_targets() -> None:
    args = parse_args(["--quick"])
    assert (args.runs, args.retries, args.concurrency) == (1, 0, [16])
    full = parse_args([])
    assert (full.runs, full.retries, full.concurrency, full.call_concurrency) == (3, 2, [16, 64], [1, 16])
    assert [s.name for s in scenarios(50)] == list(FRAMEX_SCENARIOS)


def test_a_lower_is_better_goal_is_met_below_its_target() -> None:
    from bench.common import Point
    from bench.loadgen import LoadResult

    def result(server_cpu: float) -> LoadResult:
        return LoadResult("wrk", 64, 1.0, 1000, 0, 1.0, 2.0, 3.0, server_cpu=server_cpu)

    point = Point("blocking", "/", 64, {"framex": [result(0.2)], "fastapi": [result(0.3)]})
    goal = Goal("blocking", 64, "framex", "fastapi", "cpu", 1.0, "server_us_per_request")
    judged = judge(goal, point)
    assert judged["verdict"] == "met" and judged["ratio"] == pytest.approx(2 / 3)
    point.runs["framex"] = [result(0.4)]
    assert judge(goal, point)["verdict"] == "MISSED"
