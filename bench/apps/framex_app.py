"""The FrameX app of the benchmark: only ``bench_plugin``, no built-ins, no YAML file.

``BENCH_MAX_WORKERS`` sets the local adapter's thread pool size (default 32). Serve it
from a directory without ``config/local.yaml`` and with ``FRAMEX_CONFIG`` unset.
"""

import os

import framex

container = framex.create_container(
    None,
    load_plugins=["bench.apps.bench_plugin"],
    load_builtin_plugins=[],
    local__max_workers=int(os.environ.get("BENCH_MAX_WORKERS", "32")),
)
framex.use_container(container)
app = framex.create_app(container)
