"""Every benchmark in ``bench/`` in one command, written up in ``docs/benchmarks.md``.

Run from the repository root::

    python -m bench                  # everything, about 70 minutes (the Ray runs alone about 25 minutes)
    python -m bench --quick          # a smoke run of everything, a few minutes
    python -m bench --only trivial startup

The suite measures its own scenarios against the peers (plain FastAPI, a hand-written Ray
Serve app, FrameX-kit 0.4.2 in ``bench/.venvs/framex-kit``, created on first use) and runs
the other modules (``bench.http_ray``, ``bench.remote_fanout``, ...) as subprocesses,
reading their JSON results. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (
    OTHER_LOAD_LIMIT,
    RESULTS,
    ROOT,
    Section,
    Series,
    apply_profile,
    check_load_options,
    pick_loadgen,
    render_peer_table,
    run_cli,
    source_state,
    timestamp,
    versions,
    write_report,
)
from bench.kit import KIT_VERSION, ensure_kit, kit_versions
from bench.local_peers import LOCAL_SCENARIOS, run_local
from bench.startup import run_startup

DOC = ROOT / "docs" / "benchmarks.md"
MODULES = (
    "request_path",
    "ray_remote",
    "watchdog",
    "cache",
    "production",
    "proxy",
    "batching",
    "workers",
    "tracing",
)
"""Benchmarks of ``bench/`` run as they are (when the module exists); their own tables are copied."""
SCENARIOS = (*LOCAL_SCENARIOS, "fanout", "startup", "ray", *MODULES)

FULL: dict[str, Any] = {
    "duration": 5.0,
    "warmup": 1.0,
    "runs": 3,
    "retries": 2,
    "levels": {"trivial": [1, 16, 64], "blocking": [16, 64, 128], "process": [16], "calls": [1, 16]},
    "plugins": [1, 10, 50],
}
QUICK: dict[str, Any] = {
    "duration": 1.0,
    "warmup": 0.3,
    "runs": 1,
    "retries": 0,
    "levels": {"trivial": [16], "blocking": [64], "process": [16], "calls": [16]},
    "plugins": [1, 10, 50],
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: one short measurement per point")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run these scenarios only")
    parser.add_argument("--skip", nargs="+", choices=SCENARIOS, default=[], help="run all but these")
    parser.add_argument("--no-kit", action="store_true", help="leave FrameX-kit out (no virtualenv, no pip)")
    parser.add_argument("--duration", type=float, help=f"seconds per HTTP measurement ({FULL['duration']})")
    parser.add_argument("--warmup", type=float, help=f"seconds of load before each ({FULL['warmup']})")
    parser.add_argument("--runs", type=int, help=f"runs per app and point; medians reported ({FULL['runs']})")
    parser.add_argument("--retries", type=int, help="measure again when other processes were busy (2; --quick 0)")
    parser.add_argument("--loadgen", choices=["auto", "python", "wrk"], default="auto", help="as in bench.http_local")
    parser.add_argument("--max-workers", type=int, default=32, help="thread pool of every app (32)")
    parser.add_argument("--max-processes", type=int, default=os.cpu_count() or 1, help="process pools (CPU count)")
    parser.add_argument("--doc", type=Path, default=DOC, help="the Markdown report (docs/benchmarks.md)")
    parser.add_argument("--output", type=Path, default=RESULTS / "suite.json", help="the JSON results")
    parser.add_argument(
        "--render", action="store_true", help="measure nothing: write the report again from the --output JSON"
    )
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL
    apply_profile(args, {k: profile[k] for k in ("duration", "warmup", "runs", "retries")})
    args.levels, args.plugins = profile["levels"], profile["plugins"]
    check_load_options(parser, args, [])
    chosen = args.only or [s for s in SCENARIOS if s != "proxy" or (ROOT / "bench" / "proxy.py").exists()]
    args.scenarios = [s for s in chosen if s not in args.skip]
    return args


# -- benchmarks run as subprocesses ---------------------------------------------------


def run_module(module: str, flags: list[str], quick: bool) -> tuple[dict[str, Any] | None, str]:
    """``python -m bench.<module>``, progress on our stderr; its JSON report, or why there is none."""
    output = RESULTS / f"suite-{module}.json"
    quick_flag = ["--quick"] if quick else []
    command = [sys.executable, "-m", f"bench.{module}", *flags, *quick_flag, "--output", str(output)]
    print(f"\n== {shlex.join(command[1:])}", file=sys.stderr, flush=True)
    output.unlink(missing_ok=True)
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, check=False)
    if done.returncode != 0 or not output.exists():
        return None, f"`python -m bench.{module}` failed (exit status {done.returncode}); no results"
    report: dict[str, Any] = json.loads(output.read_text())
    return report, f"`{report.get('command', module)}` ({report.get('seconds', '?')} s)"


def run_kit_fanout(kit_python: Path, n: int, fanout: int, runs: int) -> list[float]:
    """FrameX-kit's fan-out (``bench/apps/kit/kit_fanout.py``) in its virtualenv: wall seconds per run."""
    from bench.common import base_env
    from bench.kit import KIT_APPS

    command = [str(kit_python), str(KIT_APPS / "kit_fanout.py"), "--n", str(n), "--fanout", str(fanout)]
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [*command, "--runs", str(runs)], cwd=tmp, env=base_env(), capture_output=True, text=True, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"FrameX-kit fan-out failed: {done.stderr.strip()[-500:]}")
    walls: list[float] = json.loads(done.stdout.strip().splitlines()[-1])["wall_s"]
    return walls


def fanout_section(args: argparse.Namespace, kit_python: Path | None) -> Section:
    """``bench.remote_fanout --sections fanout --peers``, plus FrameX-kit's fan-out with the same job."""
    flags = ["--sections", "fanout", "--peers", "--retries", str(args.retries)]
    report, ran = run_module("remote_fanout", flags, args.quick)
    if report is None:
        return Section("fanout", "CPU-bound fan-out", ran, "", notes=[ran])
    walls: dict[str, list[float]] = {}
    for sample in report["samples"]:
        if sample["section"] == "fanout":
            walls.setdefault(sample["variant"], []).append(sample["seconds"])
    settings, calibration = report["settings"], report["calibration"]
    notes = [ran]
    kit_walls: list[float] = []
    if kit_python is not None:
        kit_walls = run_kit_fanout(kit_python, calibration["n"], settings["fanout"], settings["runs"])
        notes.append("FrameX-kit's runs come right after the others (another process, not interleaved with them).")
    pairs = [("threads", "thread", "plain_thread"), ("processes", "process", "plain_process")]
    pairs.append(("Ray", "ray", "raw_ray"))
    rows = [
        Series(f"{label}: wall s", ".3f", {"framex": walls.get(mine, []), "plain": walls.get(theirs, [])})
        for label, mine, theirs in pairs
    ]
    if kit_walls:
        rows[0].values["kit"] = kit_walls
    for row in rows:
        row.values = {k: v for k, v in row.values.items() if v}
    sequential = walls.get("sequential")
    if sequential:
        notes.append(f"The same jobs one after the other, without any executor: {statistics.median(sequential):.3f} s.")
    apps = [("framex", "FrameX"), ("plain", "without FrameX"), ("kit", "FrameX-kit")]
    what = (
        f"{settings['fanout']} pure-Python jobs of about {calibration['cpu_ms']:.0f} ms of CPU each "
        f"(`spin({calibration['n']:,})`), started at once and awaited together: FrameX `await job.map(items)` on its "
        "thread pool, its process pool and Ray; without FrameX `asyncio.gather` of `asyncio.to_thread`, of "
        f"`run_in_executor` on a `ProcessPoolExecutor` ({settings['processes']} processes, as FrameX's) and of a raw "
        f"`ray.remote` task; FrameX-kit `asyncio.gather` of its `@remote` job. Wall seconds ({settings['num_cpus']} "
        "Ray CPUs on this machine)."
    )
    table = render_peer_table(rows, [a for a in apps if any(a[0] in r.values for r in rows)])
    return Section("fanout", "CPU-bound fan-out", what, table, notes=notes, raw={"walls": walls, "kit": kit_walls})


def ray_sections(args: argparse.Namespace) -> list[Section]:
    """``bench.http_ray``: FrameX on Ray Serve against the hand-written Ray Serve app."""
    report, ran = run_module("http_ray", ["--retries", str(args.retries), "--loadgen", args.loadgen], args.quick)
    if report is None:
        return [Section("ray", "Ray Serve", ran, "", notes=[ran])]
    apps = [("framex", "FrameX"), ("serve", "Ray Serve by hand")]
    by_scenario: dict[str, list[Series]] = {}
    for point in report["points"]:
        runs = {key: entry["runs"] for key, entry in point["apps"].items()}
        for name, attr, fmt in (("req/s", "rps", ",.0f"), ("p99 ms", "p99_ms", ",.0f")):
            values = {key: [r[attr] for r in rs if r.get(attr) is not None] for key, rs in runs.items()}
            row = Series(f"c={point['concurrency']}: {name}", fmt, values)
            by_scenario.setdefault(point["scenario"], []).append(row)
    startup = [Series("s to first 200", ".1f", report["startup_seconds"])]
    what = {
        "trivial": "`framex run --adapter ray` (ingress deployment, then the plugin's deployment over a handle) "
        "against the same path written by hand with Ray Serve, each with a private 2-CPU Ray instance.",
        "blocking": "The plugin awaits a sync `@remote()` job sleeping 50 ms, which runs as a Ray task; the "
        "hand-written app awaits a `ray.remote` task. Each task reserves 1 of Ray's 2 CPUs: ceiling 40 req/s.",
    }
    sections = [
        Section(
            f"ray_{name}",
            f"Ray mode: {'trivial route' if name == 'trivial' else 'blocking job behind `@remote` on Ray'}",
            what.get(name, ""),
            render_peer_table(rows, apps),
            notes=[ran],
        )
        for name, rows in by_scenario.items()
    ]
    sections.append(
        Section(
            "ray_startup",
            "Ray mode: start-up time to first 200",
            "From starting the server (Ray, Serve and the deployments included) to the first 200, one plugin.",
            render_peer_table(startup, apps),
            notes=[ran, *report.get("notes", [])],
            raw={"startup_seconds": report["startup_seconds"]},
        )
    )
    return sections


def module_section(module: str, args: argparse.Namespace) -> Section:
    """A benchmark of ``bench/`` run as it is; its own table, notes and command."""
    report, ran = run_module(module, ["--retries", str(args.retries)], args.quick)
    if report is None:
        return Section(module, f"`bench.{module}`", ran, "", notes=[ran])
    tables = report.get("tables") or [report.get("table", "")]
    table = "\n\n".join(str(t) for t in (tables.values() if isinstance(tables, dict) else tables))
    what = f"See the `{module}` section of `bench/README.md`."
    return Section(module, f"`bench.{module}`", what, table, notes=[ran, *report.get("notes", [])])


# -- the report -----------------------------------------------------------------------


def describe_run(args: argparse.Namespace) -> str:
    """Full, quick or reduced, and which scenarios: what the report's numbers come from."""
    sizes = ("runs", "duration", "warmup", "retries")
    resized = [f"`--{k.replace('_', '-')} {getattr(args, k):g}`" for k in sizes if getattr(args, k) != FULL[k]]
    if args.quick:
        kind = "Quick run (`--quick`: one short run per point)"
    else:
        kind = f"Reduced run ({', '.join(resized)} instead of the full sizes)" if resized else "Full run"
    if args.only or args.skip:
        kind += f", of these scenarios only: {', '.join(args.scenarios)}"
    return kind


def other_loads(data: Any) -> list[float]:
    """Every ``other_cpu`` (cores other processes used during a measurement) found in ``data``."""
    if isinstance(data, dict):
        found = [float(v) for k, v in data.items() if k == "other_cpu" and v is not None]
        return found + [x for k, v in data.items() if k != "other_cpu" for x in other_loads(v)]
    if isinstance(data, list):
        return [x for item in data for x in other_loads(item)]
    return []


def render_doc(sections: list[Section], facts: dict[str, Any]) -> str:
    """``docs/benchmarks.md``."""
    loads = [x for section in sections for x in other_loads(section.raw)]
    busy = sum(1 for x in loads if x > OTHER_LOAD_LIMIT)
    quiet = (
        f"- Other processes used more than {OTHER_LOAD_LIMIT} core during {busy} of the {len(loads)} HTTP "
        f"measurements kept (median {statistics.median(loads):.2f} core, at most {max(loads):.2f}): "
        + ("the machine was not quiet, so small differences mean little." if busy else "the machine was quiet.")
        if loads
        else ""
    )
    lines = [
        "# Benchmarks",
        "",
        "This page is generated by `python -m bench` (see `bench/README.md`); rerun the command below to",
        "refresh it rather than editing it by hand.",
        "",
        f"**{facts['kind']}**, {facts['started']}, {facts['seconds'] / 60:.0f} minutes. "
        "Command, from the repository root:",
        "",
        "```sh",
        facts["command"],
        "```",
        "",
        "## Machine and versions",
        "",
        "| what | value |",
        "| --- | --- |",
        f"| CPU cores | {facts['cpus']} |",
        f"| platform | {facts['platform']} |",
        f"| FrameX | commit {facts['source']['commit'] or 'unknown'}"
        + (" (with local changes)" if facts["source"]["framex_changes"] else "")
        + " |",
        *(f"| {name} | {version} |" for name, version in facts["versions"].items()),
        *(f"| FrameX-kit's virtualenv: {name} | {version} |" for name, version in facts["kit_versions"].items()),
        f"| load generator | {facts['loadgen']} |",
        "",
        "## How to read the tables",
        "",
        f"- Each cell is the **median** of {facts['runs']} run(s), with the **min-max** over those runs in "
        "parentheses. Every peer is measured in the same run, on the same machine, the apps taking turns.",
        "- **FrameX ÷ peer** is the ratio of the medians. For req/s above 1.00x means FrameX is faster; for times "
        "(ms, s) and CPU per request (µs) below 1.00x means FrameX is faster.",
        f"- HTTP measurements: {facts['warmup']:g} s of warm-up, then {facts['duration']:g} s measured; a "
        "measurement during which other processes used more than 0.2 core is taken again (up to "
        f"{facts['retries']} times). The servers run one uvicorn worker each, with the same flags, on 127.0.0.1.",
        "- On 2 cores the server gets one core and the load generator the other: compare numbers within one run, "
        "not across machines.",
        f"- Peers: {facts['kit_note']}",
        *([quiet] if quiet else []),
        "",
    ]
    for section in sections:
        lines += [f"## {section.title}", "", section.what, ""]
        if section.table:
            lines += [section.table, ""]
        if section.notes:
            lines += [*(f"- {note}" for note in section.notes), ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios, write ``docs/benchmarks.md`` and ``bench/results/suite.json``."""
    args = parse_args(argv)
    if args.render:
        saved = json.loads(args.output.read_text())
        saved["kind"] = describe_run(parse_args(shlex.split(saved["command"])[3:]))
        args.doc.write_text(render_doc([Section(**s) for s in saved.pop("sections")], saved))
        print(f"report: {args.doc}", file=sys.stderr)
        return 0
    started = time.time()
    loadgen, measure = pick_loadgen(args.loadgen)
    kit_python, kit_note = (None, "FrameX-kit left out (`--no-kit`).") if args.no_kit else ensure_kit()
    print(f"FrameX-kit: {kit_note}", file=sys.stderr, flush=True)

    sections: list[Section] = []
    steps: list[tuple[str, Callable[[], list[Section]]]] = []
    local = [s for s in args.scenarios if s in LOCAL_SCENARIOS]
    if local:

        def local_step() -> list[Section]:
            with tempfile.TemporaryDirectory(prefix="framex-bench-suite-") as tmp:
                return run_local(local, args.levels, kit_python, measure, args, Path(tmp))

        steps.append(("local", local_step))
    if "fanout" in args.scenarios:
        steps.append(("fanout", lambda: [fanout_section(args, kit_python)]))
    if "startup" in args.scenarios:
        steps.append(("startup", lambda: [run_startup(args.plugins, args.runs, kit_python)]))
    if "ray" in args.scenarios:
        steps.append(("ray", lambda: ray_sections(args)))
    for module in MODULES:
        if module in args.scenarios:
            steps.append((module, lambda module=module: [module_section(module, args)]))
    for name, step in steps:
        try:
            sections += step()
        except (RuntimeError, TimeoutError, OSError) as exc:  # one failed scenario must not lose the others
            print(f"{name} failed: {exc}", file=sys.stderr, flush=True)
            reason = str(exc).strip().splitlines()
            sections.append(Section(name, name, f"Not measured: {reason[0]} ... {reason[-1]}", ""))

    facts = {
        "kind": describe_run(args),
        "command": shlex.join([".venv/bin/python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])]),
        "started": timestamp(started),
        "seconds": time.time() - started,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "source": source_state(),
        "versions": versions("fastapi", "starlette", "uvicorn", "pydantic", "uvloop", "httptools", "ray"),
        "kit_versions": kit_versions(kit_python) if kit_python else {},
        "kit_note": "plain FastAPI + uvicorn; a hand-written Ray Serve app (Ray mode); "
        + (
            f"FrameX-kit {KIT_VERSION} from PyPI in its own virtualenv, created by the suite ({kit_note}), "
            "served by the same uvicorn command as the others; "
            "FrameX-kit's Ray mode is not measured (it pins `ray[serve]==2.55.1`)."
            if kit_python
            else kit_note
        ),
        "loadgen": "wrk (one thread)" if loadgen == "wrk" else "bench/loadgen.py",
        "runs": args.runs,
        "warmup": args.warmup,
        "duration": args.duration,
        "retries": args.retries,
    }
    args.doc.write_text(render_doc(sections, facts))
    print(f"\nreport: {args.doc}", file=sys.stderr)
    report = {**facts, "sections": [vars(s) for s in sections]}
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    run_cli(main, "interrupted; the servers were stopped")
