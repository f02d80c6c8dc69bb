"""The verdicts of ``bench.request_path``: its targets, how each is judged, and the tables
and notes that report them."""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import Point, num, worst


@dataclass(frozen=True)
class Goal:
    """One target of the issue: ``app`` over ``base`` on ``metric`` at one point."""

    scenario: str
    concurrency: int
    app: str
    base: str
    text: str
    target: float | None
    """None: reported for reference, no target."""
    metric: str = "rps"
    """``rps`` (higher is better) or ``server_us_per_request`` (lower is better)."""


def goals(args: argparse.Namespace) -> list[Goal]:
    """The issue's targets at the levels measured, and the reference ratios next to them."""
    found: list[Goal] = []
    for c in args.concurrency:
        found += [
            Goal("query", c, "framex", "fastapi", "FrameX >= 2.0x FastAPI req/s", 2.0),
            Goal("query", c, "framex", "asgi", "FrameX >= 0.5x bare ASGI req/s", 0.5),
            Goal("query", c, "framex_fastapi", "fastapi", "FrameX on FastAPI's path / FastAPI req/s", None),
            Goal("order", c, "framex", "fastapi", "FrameX >= 1.8x FastAPI req/s", 1.8),
            Goal("order", c, "framex_fastapi", "fastapi", "FrameX on FastAPI's path / FastAPI req/s", None),
        ]
    for c in args.blocking_concurrency:
        text = "FrameX <= 1.0x FastAPI server CPU per request"
        found.append(Goal("blocking", c, "framex", "fastapi", text, 1.0 if c == 64 else None, "server_us_per_request"))
    for c in args.call_concurrency:
        found.append(
            Goal("call", c, "call", "direct", "call_plugin_api >= 0.95x direct req/s", 0.95 if c == 1 else None)
        )
    return found


def paired(point: Point, app: str, base: str, metric: str) -> list[float]:
    """``app`` / ``base`` of each round: both measured in the same round, so slow drifts of the
    machine's speed cancel out of each ratio."""
    pairs = zip(point.runs.get(app, []), point.runs.get(base, []), strict=False)
    return [a / b for x, y in pairs if (a := getattr(x, metric)) is not None and (b := getattr(y, metric))]


def judge(goal: Goal, point: Point) -> dict[str, Any]:
    """The goal's ratio of medians, its per-round ratios and the verdict."""
    mine, theirs = point.median(goal.app, goal.metric), point.median(goal.base, goal.metric)
    ratio = mine / theirs if mine is not None and theirs else None
    verdict = "reference"
    if goal.target is not None:
        lower_is_better = goal.metric != "rps"
        met = ratio is not None and (ratio <= goal.target if lower_is_better else ratio >= goal.target)
        verdict = "met" if met else "MISSED"
    # A server that is the bottleneck serves 1 / (its CPU per request) requests per CPU-second:
    # the req/s ratio it would have on a CPU of its own, which other load disturbs far less.
    us = "server_us_per_request"
    mine_us, theirs_us = point.median(goal.app, us), point.median(goal.base, us)
    by_cpu = theirs_us / mine_us if goal.metric == "rps" and mine_us and theirs_us is not None else None
    return {
        "scenario": goal.scenario,
        "concurrency": goal.concurrency,
        "goal": goal.text,
        "metric": goal.metric,
        "target": goal.target,
        "ratio": ratio,
        "ratio_by_server_cpu": by_cpu,
        "per_round": paired(point, goal.app, goal.base, goal.metric),
        "verdict": verdict,
    }


def render_goals(judged: Sequence[dict[str, Any]]) -> str:
    """The targets table: each ratio, its spread over the rounds, the same from CPU per request, the verdict."""
    lines = [
        "| scenario | c | target | ratio of medians | per round: median (range) | from server µs/request | verdict |",
        "| --- | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for j in judged:
        rounds = j["per_round"]
        spread = f"{statistics.median(rounds):.2f}x ({min(rounds):.2f}-{max(rounds):.2f})" if rounds else "n/a"
        ratio, by_cpu = (f"{v:.2f}x" if v is not None else "-" for v in (j["ratio"], j["ratio_by_server_cpu"]))
        lines.append(
            f"| {j['scenario']} | {j['concurrency']} | {j['goal']} | {ratio} | {spread} | {by_cpu} | {j['verdict']} |"
        )
    return "\n".join(lines)


def render_conditions(points: Sequence[Point]) -> str:
    """Whether the numbers can be trusted: the client's CPU, other load, steal and errors per point."""
    lines = [
        "| scenario | c | server CPU (min) | loadgen CPU (max) | other load (max) | steal (max) | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for p in points:
        results = [r for rs in p.runs.values() for r in rs]
        servers = [r.server_cpu for r in results if r.server_cpu is not None]
        errors = ", ".join(f"{app} {n}" for app in p.runs if (n := p.errors(app))) or "none"
        lines.append(
            f"| {p.scenario} | {p.concurrency} | {num(min(servers) if servers else None, '.2f')} "
            f"| {num(worst(results, 'client_cpu'), '.2f')} | {num(worst(results, 'other_cpu'), '.2f')} "
            f"| {num(worst(results, 'steal'), '.0%')} | {errors} |"
        )
    return "\n".join(lines)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` shows them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def features_note(label: str, found: dict[str, Any]) -> str:
    """One line saying what a FrameX server does per request."""

    def on(flag: Any) -> str:
        return "on" if flag else "off"

    access = "on, but no records: `framex.access` is not enabled for INFO" if found["access_log"] else "off"
    if found["access_log_records"]:
        access = "on (records made)"
    fallbacks = found["fallbacks"]
    routes = f"{found['compiled']} compiled, {len(fallbacks)} left to FastAPI's path"
    if not found["compiled_path"]:
        routes = "all on FastAPI's path (this build has no compiled path)"
    elif not found["compiled_routes"]:
        routes = "all on FastAPI's path (server.compiled_routes: false)"
    return (
        f"{label}: request ids {on(found['request_ids'])}, watchdog {on(found['watchdog_ms'])} "
        f"({found['watchdog_ms']} ms), access log {access}, console {on(found['console'])}, "
        f"metrics {on(found['metrics'])}, tracing {on(found['tracing'])}, cache {on(found['cache'])}, "
        f"auth rules {found['auth_rules']}; plugin routes: {routes}"
        + (f" ({'; '.join(f'{k}: {v}' for k, v in fallbacks.items())})" if fallbacks else "")
    )
