"""Start-up time to the first 200 with 1, 10 and 50 generated plugins: FrameX, plain FastAPI, FrameX-kit.

Each plugin ``pK`` is a generated module with one route, ``GET /api/v1/pK``; the server is
ready when the last plugin's route answers 200. The same plugin source serves FrameX and
FrameX-kit (an ``@on_register`` class, FrameX-kit's documented form, which FrameX runs
unchanged); plain FastAPI gets one module with an ``APIRouter`` per plugin. Each framework
starts the way its documentation says: ``framex run --config`` (FrameX),
``framex run --load-plugins ...`` (FrameX-kit, in its virtualenv), ``python -m uvicorn app:app``
(FastAPI). Timed from ``Popen`` to the first 200; the apps take turns, one server at a time.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bench.common import HOST, Section, Series, base_env, free_port, render_peer_table, serving

PLUGIN = """from framex.plugin import BasePlugin, PluginMetadata, on_register, on_request

__plugin_meta__ = PluginMetadata(
    name="p{k}", version="1.0.0", description="generated", author="bench", url="https://example.invalid/p{k}"
)


@on_register()
class P{k}Plugin(BasePlugin):
    @on_request("/p{k}")
    async def hello(self) -> dict[str, int]:
        return {{"plugin": {k}}}
"""
ROUTER = """from fastapi import APIRouter

router = APIRouter()


@router.get("/api/v1/p{k}")
async def hello() -> dict[str, int]:
    return {{"plugin": {k}}}
"""


def write_plugins(folder: Path, count: int) -> list[str]:
    """``count`` plugin modules and their FastAPI routers in ``folder``; the plugin module names."""
    names = [f"p{k}" for k in range(count)]
    for k, name in enumerate(names):
        (folder / f"{name}.py").write_text(PLUGIN.format(k=k))
        (folder / f"r{k}.py").write_text(ROUTER.format(k=k))
    imports = "".join(f"import r{k}\n" for k in range(count))
    includes = "".join(f"app.include_router(r{k}.router)\n" for k in range(count))
    (folder / "fastapi_plugins.py").write_text(f"from fastapi import FastAPI\n\n{imports}\napp = FastAPI()\n{includes}")
    return names


def commands(folder: Path, names: list[str], port: int, kit_python: Path | None) -> dict[str, list[str]]:
    """The start command of each framework for these plugins on ``port``."""
    config = {
        "server": {"host": HOST, "port": port},
        "log": {"level": "warning"},
        "load_builtin_plugins": [],
        "load_plugins": names,
    }
    (folder / "framex.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    found = {
        "framex": [str(Path(sys.executable).with_name("framex")), "run", "--config", str(folder / "framex.yaml")],
        "fastapi": [sys.executable, "-m", "uvicorn", "fastapi_plugins:app", "--host", HOST, "--port", str(port)],
    }
    found["fastapi"] += ["--log-level", "warning"]
    if kit_python is not None:
        kit = [str(kit_python.with_name("framex")), "run", "--host", HOST, "--port", str(port)]
        found["kit"] = kit + [arg for name in names for arg in ("--load-plugins", name)]
    return found


LABELS = [("framex", "FrameX"), ("fastapi", "FastAPI"), ("kit", "FrameX-kit")]


def run_startup(counts: list[int], runs: int, kit_python: Path | None) -> Section:
    """Time every framework ``runs`` times at every plugin count."""
    rows = []
    raw: dict[str, Any] = {}
    for count in counts:
        row = Series(f"{count} plugin{'s' if count > 1 else ''}: s to first 200", ".2f")
        with tempfile.TemporaryDirectory(prefix="framex-bench-startup-") as tmp:
            folder = Path(tmp)
            names = write_plugins(folder, count)
            for run in range(runs):
                keys = list(commands(folder, names, 0, kit_python))
                shift = run % len(keys)
                for key in keys[shift:] + keys[:shift]:
                    port = free_port()
                    command = commands(folder, names, port, kit_python)[key]
                    # The plugins are named relative to the working directory (FrameX-kit: PYTHONPATH=.).
                    env = base_env(PYTHONPATH=str(folder)) if key == "kit" else base_env()
                    with serving(
                        command,
                        label=f"{key} ({count} plugins)",
                        port=port,
                        ready_path=f"/api/v1/p{count - 1}",
                        cwd=folder,
                        env=env,
                        log_path=folder / f"{key}-{run}.log",
                        timeout=120.0,
                    ) as (_, seconds):
                        row.values.setdefault(key, []).append(seconds)
                    print(f"  start-up {key:8} {count:3} plugins: {seconds:.2f} s", file=sys.stderr, flush=True)
        rows.append(row)
        raw[str(count)] = row.values
    what = (
        "Seconds from starting the server process to the first 200 on the last plugin's route, with 1, 10 and 50 "
        "generated plugins of one route each (imports, plugin loading, route building and uvicorn's start included)."
    )
    table = render_peer_table(rows, [(k, label) for k, label in LABELS if any(k in r.values for r in rows)])
    return Section("startup", "Start-up time to first 200", what, table, raw=raw)
