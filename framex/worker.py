"""One worker process, started by :mod:`framex.workers` (``--workers``) or :mod:`framex.reload`.

``python -m framex.worker --listen-fd N --status-fd M [--metrics-dir DIR]`` reads the
validated settings (JSON, one line) from stdin, builds its own container from them and
serves on the inherited listening socket ``N``. It writes one JSON line to the pipe
``M``: ``{"ready": <start-up summary>}`` once it serves, or ``{"error": ..., "code": ...}``
when it cannot start. When its stdin ends (the supervisor is gone), it stops itself.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import select
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from typing import Any, TextIO, cast

from framex.config import validate_settings
from framex.container import container_of
from framex.context import use_container
from framex.errors import FrameXError, PluginStartError
from framex.serve import serve_one
from framex.summary import StartupSummary

PIPE_BUF = select.PIPE_BUF
"""Writes up to this size reach a pipe whole, never mixed with another process's."""


class WholeLines(io.TextIOBase):
    """Writes text to file descriptor ``fd`` in whole lines, at most :data:`PIPE_BUF` bytes
    a write where lines allow: the workers share one stderr, and their lines must not
    interleave mid-line (as they would when one ``write`` of many lines is split)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        data = text.encode("utf-8", "backslashreplace")
        while data:
            if len(data) <= PIPE_BUF:
                cut = len(data)
            else:
                cut = data.rfind(b"\n", 0, PIPE_BUF) + 1 or data.find(b"\n") + 1 or len(data)
            chunk = memoryview(data)[:cut]
            while chunk:
                chunk = chunk[os.write(self.fd, chunk) :]
            data = data[cut:]
        return len(text)


def _read_settings() -> Any:
    # Plain reads of the descriptor: a buffered `sys.stdin` read by the watching thread
    # would hold its lock when the interpreter shuts down.
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(0, 65536)
        if not chunk:
            break
        data += chunk
    return json.loads(data)


def _watch_supervisor() -> None:
    # The supervisor holds the other end of stdin: end of file means it is gone.
    while os.read(0, 4096):
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m framex.worker", description=__doc__)
    parser.add_argument("--listen-fd", type=int, required=True, help="the inherited listening socket")
    parser.add_argument("--status-fd", type=int, required=True, help="the pipe to report on")
    parser.add_argument("--metrics-dir", help="where the workers share their metrics")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve as one worker until SIGTERM; the exit status."""
    args = _parser().parse_args(argv)
    # Plugins are named relative to the project, as under `framex run`.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    status = os.fdopen(args.status_fd, "w")

    def report(doc: dict[str, Any]) -> None:
        status.write(json.dumps(doc) + "\n")
        status.flush()

    def ready(summary: StartupSummary) -> None:
        report({"ready": summary.fields()})

    document = _read_settings()
    threading.Thread(target=_watch_supervisor, name="framex-supervisor-watch", daemon=True).start()
    try:
        container = container_of(validate_settings(document, "the settings from the supervisor"))
        if args.metrics_dir:
            container.metrics_dir.override(args.metrics_dir)
        use_container(container)
        sock = socket.socket(fileno=args.listen_fd)
        serve_one(container, [sock], on_ready=ready, log_stream=cast(TextIO, WholeLines(sys.stderr.fileno())))
    except PluginStartError as exc:
        report({"error": str(exc), "code": 1})
        return 1
    except FrameXError as exc:
        report({"error": str(exc), "code": 2})
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
