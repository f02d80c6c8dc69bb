"""The FrameX app of the benchmark: ``bench_plugin`` (or ``BENCH_PLUGINS``), no built-ins, no YAML file.

``BENCH_PLUGINS`` lists the plugin modules, comma-separated (default ``bench.apps.bench_plugin``);
``BENCH_MAX_WORKERS`` sets the local adapter's thread pool size (default 32) and
``BENCH_MAX_PROCESSES`` its process pool size (default: the CPU count); ``BENCH_CONSOLE=off``
turns the console off, ``BENCH_METRICS=on`` turns the metrics on and ``BENCH_COMPILED=off``
sends every request through FastAPI's path (``server.compiled_routes: false``). Serve it from a
directory without ``config/local.yaml`` and with ``FRAMEX_CONFIG`` unset. Like ``framex
run``, the app freezes the garbage collector's view of its start-up objects.
"""

import os

import framex

# Only set when asked for: builds older than the setting reject unknown keys.
compiled = {"server__compiled_routes": False} if os.environ.get("BENCH_COMPILED") == "off" else {}
container = framex.create_container(
    None,
    load_plugins=os.environ.get("BENCH_PLUGINS", "bench.apps.bench_plugin").split(","),
    load_builtin_plugins=[],
    local__max_workers=int(os.environ.get("BENCH_MAX_WORKERS", "32")),
    local__max_processes=int(os.environ.get("BENCH_MAX_PROCESSES", str(os.cpu_count() or 1))),
    console__enabled=os.environ.get("BENCH_CONSOLE", "on") != "off",
    metrics__enabled=os.environ.get("BENCH_METRICS", "off") == "on",
    **compiled,
)
framex.use_container(container)
# As `framex run` serves it: the start-up objects are kept out of the collector's full passes.
container.owns_process.override(True)
app = framex.create_app(container)
