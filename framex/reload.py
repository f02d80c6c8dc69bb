"""``framex run --reload``: serve, and restart the server when a plugin module or the config changes.

For development, as ``uvicorn --reload`` and ``fastapi dev``: this process binds the port
once and watches, with ``watchfiles``, the ``.py`` files under the working directory (where
plugins are imported from) and the configuration file. The server runs in a worker
process (:class:`framex.workers.WorkerProcess`); on a change the configuration is read
again, the worker is stopped (its plugins' ``on_stop`` runs) and a new one imports
everything afresh. Requests that arrive while it starts wait in the socket's queue (one
that reaches the old process just as it stops may be dropped). A
configuration that became invalid is reported and the running server kept; a server that
cannot start (a syntax error in a plugin) is reported and started again on the next
change.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from framex.config import Settings, load_settings, resolve_config_path
from framex.errors import ConfigError, FrameXError
from framex.logs import configure_logging
from framex.workers import STOP_GRACE, WorkerProcess, bind_socket, describe_exit

logger = logging.getLogger("framex.reload")

STATUS_INTERVAL_MS = 200
"""How often, without changes, the watcher looks at the server process (ms)."""


def check_reload(settings: Settings) -> None:
    """Refuse ``--reload`` where it cannot work, saying what to do instead."""
    if settings.adapter == "ray":
        raise FrameXError(
            "`--reload` works with the local backend only: Ray Serve replicas keep the code they started with. "
            "Develop with `--adapter local --reload`, or drop `--reload`."
        )
    if settings.server.workers > 1:
        raise FrameXError(
            f"`--reload` runs one server process and cannot be combined with `server.workers: "
            f"{settings.server.workers}` (`--workers`). Drop `--reload`, or run with `--workers 1` while developing."
        )


class _ChangeFilter:
    """Python files and the configuration file, outside the folders ``watchfiles`` ignores."""

    def __init__(self, config_file: Path | None) -> None:
        from watchfiles import DefaultFilter

        self._default = DefaultFilter()
        self._config = str(config_file.resolve()) if config_file is not None else None

    def __call__(self, change: Any, path: str) -> bool:
        return self._default(change, path) and (path.endswith(".py") or path == self._config)


def serve_with_reload(config_path: str | os.PathLike[str] | None, overrides: Mapping[str, Any]) -> None:
    """Serve with the configuration of ``config_path`` and ``overrides``, restarting on changes,
    until SIGTERM or Ctrl-C."""
    settings = load_settings(config_path, overrides)
    check_reload(settings)
    try:
        from watchfiles import watch
    except ImportError:
        raise FrameXError("`--reload` needs the `watchfiles` package: `pip install watchfiles`.") from None
    logs = configure_logging(settings.log)
    sock = bind_socket(settings.server.host, settings.server.port)
    config_file = resolve_config_path(config_path)
    roots = [Path.cwd()]
    if config_file is not None and not config_file.resolve().is_relative_to(Path.cwd()):
        roots.append(config_file.resolve().parent)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    worker: WorkerProcess | None = WorkerProcess(settings, sock)
    announced = False
    logger.info("Watching %s for changes (`--reload`).", ", ".join(map(str, roots)))
    try:
        for changes in watch(
            *roots,
            watch_filter=_ChangeFilter(config_file),
            stop_event=stop,
            yield_on_timeout=True,
            rust_timeout=STATUS_INTERVAL_MS,
        ):
            if worker is not None:
                worker.read_status()
                if worker.summary is not None and not announced:
                    worker.summary.log(settings.log.format)
                    announced = True
                code = worker.exit_code()
                if code is not None:
                    worker.close()
                    reason = worker.error[1] if worker.error is not None else "see the log above"
                    logger.error(
                        "The server process %s (%s); it starts again when a file changes.", describe_exit(code), reason
                    )
                    worker = None
            if not changes:
                continue
            names = sorted({os.path.relpath(path) for _, path in changes})
            logger.warning("Changed: %s; restarting the server.", ", ".join(names))
            try:
                settings = load_settings(config_path, overrides)
                check_reload(settings)
            except (ConfigError, FrameXError) as exc:
                logger.error("%s The server keeps running as it was.", exc)
                continue
            if worker is not None:
                worker.stop(settings.server.shutdown_timeout_s + STOP_GRACE)
                worker.close()
            worker = WorkerProcess(settings, sock)
            announced = False
    finally:
        sock.close()
        if worker is not None:
            worker.stop(settings.server.shutdown_timeout_s + STOP_GRACE)
            worker.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        logs.close()
