"""``framex run --workers 2`` against ``--workers 1`` on the trivial route: req/s and server CPU per request.

Both servers are real ``framex run`` processes from the repository root, serving
``bench.apps.bench_plugin`` with the access log off (as the suite's apps) on 127.0.0.1;
wrk (one thread) on the same machine drives one server at a time, the two taking turns
round by round. The server's CPU is that of its whole process tree: the supervisor and
its workers with ``--workers 2``, the one process with ``--workers 1``. A measurement
during which other processes used more than 0.2 core is taken again (``--retries``).

Run from the repository root::

    python -m bench.workers            # full run: about 2 minutes
    python -m bench.workers --quick    # smoke run

The table goes to stdout, progress to stderr, everything to ``bench/results/workers.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    HOST,
    RESULTS,
    ROOT,
    base_env,
    children_cpu_seconds,
    command_line,
    disturbed,
    free_port,
    least_disturbed,
    machine,
    print_results,
    run_cli,
    serving,
    source_state,
    spread,
    timestamp,
    versions,
    write_report,
    wrk_command,
    wrk_result,
    wrk_summary,
)
from bench.loadgen import cpu_shares, usage

DEFAULT_OUTPUT = RESULTS / "workers.json"
PATH = "/api/v1/trivial"
COUNTS = (1, 2)
RPS_TARGET = 1.4
"""Two workers should serve at least this many times one worker's req/s."""
CPU_TARGET = 1.05
"""... at a server CPU per request within this factor of one worker's."""
FULL = {"duration": 5.0, "warmup": 1.0, "runs": 5, "concurrency": [16, 64]}
QUICK = {"duration": 1.0, "warmup": 1.0, "runs": 1, "concurrency": [64]}
CONFIG = """\
load_plugins: [bench.apps.bench_plugin]
load_builtin_plugins: []
log: {level: info, access_log: false}
"""


def measure(pid: int, port: int, concurrency: int, duration: float, warmup: float) -> dict[str, Any]:
    """One wrk measurement against the server ``pid`` (its process tree) on ``port``."""
    if warmup > 0:
        subprocess.run(wrk_command(port, PATH, concurrency, max(1, round(warmup))), capture_output=True, check=False)
    seconds = max(1, round(duration))
    before = usage(pid, children_cpu_seconds, tree=True)
    done = subprocess.run(
        wrk_command(port, PATH, concurrency, seconds), capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    after = usage(pid, children_cpu_seconds, tree=True)
    result = wrk_result(wrk_summary(done.returncode, done.stdout, done.stderr), concurrency, cpu_shares(before, after))
    # How evenly the workers shared the work: each process's share of the server's CPU.
    shares: list[float] = []
    if before.server_pids is not None and after.server_pids is not None:
        used = {p: t - before.server_pids.get(p, 0.0) for p, t in after.server_pids.items() if p != pid}
        total = sum(used.values())
        shares = sorted((u / total for u in used.values()), reverse=True) if total > 0 else []
    return {**result.to_dict(), "worker_cpu_shares": shares}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, help=f"seconds per measurement ({FULL['duration']})")
    parser.add_argument("--warmup", type=float, help=f"seconds of load before each measurement ({FULL['warmup']})")
    parser.add_argument("--runs", type=int, help=f"rounds; the median is reported ({FULL['runs']})")
    parser.add_argument("--concurrency", type=int, nargs="+", help=f"wrk connections ({FULL['concurrency']})")
    parser.add_argument("--retries", type=int, default=1, help="times a disturbed measurement is taken again (1)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run (explicit options still win)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON results")
    return parser


def _median(results: Sequence[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in results if r[key] is not None)


def render(runs: dict[tuple[int, int], list[dict[str, Any]]], levels: Sequence[int]) -> tuple[str, list[str]]:
    """The table (one row per concurrency) and the verdict notes."""
    rows = [
        "| connections | 1 worker req/s | 2 workers req/s | ratio | 1 worker CPU µs/req | 2 workers CPU µs/req "
        "| ratio | busiest worker's CPU share | other load (cores) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    notes = []
    for c in levels:
        one, two = runs[(1, c)], runs[(2, c)]
        rps1, rps2 = _median(one, "rps"), _median(two, "rps")
        cpu1, cpu2 = _median(one, "server_us_per_request"), _median(two, "server_us_per_request")
        busiest = statistics.median(r["worker_cpu_shares"][0] for r in two if r["worker_cpu_shares"])
        other = [r["other_cpu"] for r in one + two if r["other_cpu"] is not None]
        rows.append(
            f"| {c} | {rps1:,.0f} ({spread([r['rps'] for r in one], ',.0f')}) "
            f"| {rps2:,.0f} ({spread([r['rps'] for r in two], ',.0f')}) | {rps2 / rps1:.2f}x "
            f"| {cpu1:.0f} | {cpu2:.0f} | {cpu2 / cpu1:.2f}x | {busiest:.0%} "
            f"| {statistics.median(other):.2f} (max {max(other):.2f}) |"
        )
        # Each round measures the two back to back: their ratio shrugs off load that comes and goes.
        paired = [b["rps"] / a["rps"] for a, b in zip(one, two, strict=True) if a["rps"]]
        paired_cpu = [
            b["server_us_per_request"] / a["server_us_per_request"]
            for a, b in zip(one, two, strict=True)
            if a["server_us_per_request"] and b["server_us_per_request"]
        ]
        rps_ok = "meets" if rps2 / rps1 >= RPS_TARGET else "is BELOW"
        cpu_ok = "meets" if cpu2 / cpu1 <= CPU_TARGET else "MISSES"
        notes.append(
            f"c={c}: req/s ratio {rps2 / rps1:.2f}x {rps_ok} the {RPS_TARGET}x target; "
            f"CPU per request ratio {cpu2 / cpu1:.2f}x {cpu_ok} the {CPU_TARGET:.2f}x bound; "
            f"round by round (back to back) the req/s ratio was {statistics.median(paired):.2f}x "
            f"(range {spread(paired, '.2f')}), the CPU per request ratio {statistics.median(paired_cpu):.2f}x "
            f"(range {spread(paired_cpu, '.2f')})"
        )
    return "\n".join(rows), notes


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the table, write the JSON report."""
    args = _parser().parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    started = time.time()
    runs: dict[tuple[int, int], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="framex-bench-workers-") as tmp:
        config = Path(tmp) / "framex.yaml"
        config.write_text(CONFIG)
        with serving_all(config, Path(tmp)) as servers:
            for round_ in range(args.runs):
                for c in args.concurrency:
                    order = COUNTS if round_ % 2 == 0 else tuple(reversed(COUNTS))
                    for n in order:
                        pid, port = servers[n]

                        def attempt(pid: int = pid, port: int = port, c: int = c) -> dict[str, Any]:
                            return measure(pid, port, c, args.duration, args.warmup)

                        result = least_disturbed(attempt, lambda r: r["other_cpu"], args.retries)
                        runs.setdefault((n, c), []).append(result)
                        flag = "  (disturbed)" if disturbed(result["other_cpu"]) else ""
                        print(
                            f"  round {round_ + 1} c={c:<3} workers={n}  {result['rps']:8,.0f} req/s  "
                            f"{result['server_us_per_request'] or 0:6.0f} µs/req  server {result['server_cpu']:.2f} "
                            f"other {result['other_cpu'] or 0:.2f}{flag}"
                            f"  shares {[round(s, 2) for s in result['worker_cpu_shares']]}",
                            file=sys.stderr,
                            flush=True,
                        )
    table, notes = render(runs, args.concurrency)
    kept = [r for results in runs.values() for r in results]
    busy = sum(1 for r in kept if disturbed(r["other_cpu"]))
    notes.append(
        f"other processes used more than 0.2 core during {busy} of the {len(kept)} measurements kept "
        f"({'a busy machine: read the ratios with care' if busy else 'a quiet machine'})"
    )
    print_results(table, notes=notes)
    report = {
        "command": command_line("bench.workers", argv),
        "started": timestamp(started),
        "seconds": round(time.time() - started, 1),
        "machine": machine(),
        "source": source_state(),
        "versions": versions("uvicorn", "uvloop", "httptools"),
        "tables": {"workers": table},
        "notes": notes,
        "runs": {f"workers={n} c={c}": results for (n, c), results in runs.items()},
    }
    write_report(args.output, report)
    return 0


@contextlib.contextmanager
def serving_all(config: Path, tmp: Path) -> Iterator[dict[int, tuple[int, int]]]:
    """``framex run --workers N`` for every N in :data:`COUNTS`, each serving with all its workers;
    yields N -> (pid, port), stops them after."""
    with contextlib.ExitStack() as stack:
        servers: dict[int, tuple[int, int]] = {}
        for n in COUNTS:
            port = free_port()
            command = [sys.executable, "-m", "framex.cli", "run", "--config", str(config), "--host", HOST]
            command += ["--port", str(port), "--workers", str(n)]
            log = tmp / f"workers-{n}.log"
            label = f"workers={n}"
            process, _ = stack.enter_context(
                serving(command, label=label, port=port, ready_path=PATH, cwd=ROOT, env=base_env(), log_path=log)
            )
            # Every worker serves once the start-up summary is logged.
            deadline = time.monotonic() + 120
            while "FrameX is serving on" not in log.read_text():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{label}: no start-up summary after 120 s:\n{log.read_text()[-2000:]}")
                time.sleep(0.05)
            servers[n] = (process.pid, port)
        yield servers


if __name__ == "__main__":
    run_cli(main, "interrupted; the servers were stopped")
