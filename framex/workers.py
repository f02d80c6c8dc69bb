"""Worker processes: ``server.workers`` uvicorn processes serving one port, and their supervisor.

The supervisor (``framex run --workers N``) binds the listening socket once and starts N
``python -m framex.worker`` processes that all accept on it. Each worker gets the
validated settings on its stdin, builds its own container from them, starts the plugins
and serves; it reports on a pipe of its own when it serves (with its start-up summary)
or why it could not start. The supervisor

- logs one start-up summary once every worker serves, or stops them all and fails with
  the first worker's error when one cannot start;
- replaces a worker that dies (one that dies before serving is retried with a growing
  pause, so a plugin that no longer starts does not make a busy loop);
- on SIGTERM or Ctrl-C closes the socket, sends SIGTERM to every worker (each drains its
  requests within ``server.shutdown_timeout_s`` and runs the plugins' ``on_stop``), waits
  for them and kills the ones still running after that and :data:`STOP_GRACE`; a second
  Ctrl-C makes the workers stop at once.

Workers run in process groups of their own, so a Ctrl-C in a terminal reaches the
supervisor only, which passes it on in order. A worker's stdin stays open for as long as
the supervisor lives: when it ends (the supervisor was killed), the worker stops itself.
:class:`WorkerProcess` also serves ``--reload`` (:mod:`framex.reload`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from types import FrameType
from typing import Any

from framex.config import Settings
from framex.errors import FrameXError, PluginStartError
from framex.summary import StartupSummary

logger = logging.getLogger("framex.workers")

WORKER_MODULE = "framex.worker"
"""What a worker process runs (``python -m``)."""
POLL_INTERVAL = 0.1
"""Seconds between two looks at the workers (a signal ends the wait early)."""
STOP_GRACE = 10.0
"""Seconds a worker gets beyond ``server.shutdown_timeout_s`` for ``on_stop`` and closing."""
RETRY_PAUSES = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Pauses before starting again a worker whose replacement died before serving."""
BACKLOG = 2048
"""Connections the kernel queues for the workers to accept (uvicorn's default)."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` that worker processes can inherit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise FrameXError(
            f"The server could not start on {host}:{port}: {exc.strerror or exc}. "
            "If the address is in use, pick another with `--port`."
        ) from None
    sock.listen(BACKLOG)
    return sock


class WorkerProcess:
    """One ``python -m framex.worker`` process serving on ``sock``, and what it reported."""

    def __init__(self, settings: Settings, sock: socket.socket, metrics_dir: str | None = None) -> None:
        read_end, write_end = os.pipe()
        command = [
            sys.executable,
            "-m",
            WORKER_MODULE,
            "--listen-fd",
            str(sock.fileno()),
            "--status-fd",
            str(write_end),
        ]
        if metrics_dir is not None:
            command += ["--metrics-dir", metrics_dir]
        try:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, pass_fds=(sock.fileno(), write_end), process_group=0
            )
        finally:
            os.close(write_end)
        os.set_blocking(read_end, False)
        self._status = read_end
        self._pending = b""
        self.summary: StartupSummary | None = None
        """What the worker serves, once it does (None before)."""
        self.error: tuple[int, str] | None = None
        """The exit status and message of a worker that could not start."""
        self.announced = False
        """Whether the log has said that it serves."""
        stdin = self.process.stdin
        assert stdin is not None
        # The settings, API keys included, go through the pipe: never in argv or the environment.
        stdin.write(json.dumps(settings.model_dump(mode="json")).encode() + b"\n")
        stdin.flush()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def ready(self) -> bool:
        return self.summary is not None

    def read_status(self) -> None:
        """Take in what the worker reported since the last call."""
        try:
            chunk = os.read(self._status, 65536)
        except BlockingIOError:
            return
        except OSError:  # closed already
            return
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            report: dict[str, Any] = json.loads(line)
            if "ready" in report:
                self.summary = StartupSummary.from_fields(report["ready"])
            elif "error" in report:
                self.error = (int(report["code"]), str(report["error"]))

    def exit_code(self) -> int | None:
        """The exit status once the process has ended (negative: killed by that signal), else None."""
        return self.process.poll()

    def send(self, sig: int) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the process to end; its exit status, or None."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit status."""
        self.send(signal.SIGTERM)
        code = self.wait(timeout)
        if code is None:
            self.send(signal.SIGKILL)
            code = self.process.wait()
        return code

    def close(self) -> None:
        """Release the pipes (after the process has ended)."""
        self.read_status()
        with contextlib.suppress(OSError):
            os.close(self._status)
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()

    def start_failure(self, code: int) -> FrameXError:
        """The error of a worker that ended with ``code`` before it served."""
        if self.error is not None:
            status, message = self.error
            return PluginStartError(message) if status == 1 else FrameXError(message)
        return FrameXError(f"Worker process {self.pid} {describe_exit(code)} before it was ready; its log is above.")


def describe_exit(code: int) -> str:
    """``exited with status 3`` or ``was killed by SIGKILL``."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class Supervisor:
    """Keeps ``server.workers`` workers serving until a signal says stop; see the module docstring."""

    def __init__(self, settings: Settings, sock: socket.socket, metrics_dir: str | None) -> None:
        self.settings = settings
        self.sock = sock
        self.metrics_dir = metrics_dir
        self.workers: list[WorkerProcess | None] = [None] * settings.server.workers
        self._retries = [0] * settings.server.workers
        self._not_before = [0.0] * settings.server.workers
        # A signal handler must not take a lock the interrupted code may hold (an Event's
        # would deadlock the supervisor): it writes a byte to this pipe, which `_pause` watches.
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._signals: list[int] = []

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)
        if len(self._signals) > 1 and signum == signal.SIGINT:
            # A second Ctrl-C: uvicorn's way to say "now" (it cancels what is still running).
            for worker in self.workers:
                if worker is not None:
                    worker.send(signal.SIGINT)
        with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
            os.write(self._wake_write, b"\0")

    def _pause(self) -> None:
        """Wait :data:`POLL_INTERVAL` seconds, less when a signal comes."""
        ready, _, _ = select.select([self._wake_read], [], [], POLL_INTERVAL)
        if ready:
            with contextlib.suppress(OSError):
                os.read(self._wake_read, 4096)

    def run(self) -> None:
        """Start the workers, supervise them until SIGTERM / SIGINT, then stop them."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for slot in range(len(self.workers)):
                self.workers[slot] = self._start()
            if self._wait_until_serving():
                self._log_summary()
                self._supervise()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(self._wake_read)
            os.close(self._wake_write)

    def _start(self) -> WorkerProcess:
        return WorkerProcess(self.settings, self.sock, self.metrics_dir)

    def _wait_until_serving(self) -> bool:
        """True once every worker serves; False when a signal came first. Raises the error
        of a worker that could not start."""
        while not self._signals:
            pending = False
            for worker in self.workers:
                assert worker is not None
                worker.read_status()
                code = worker.exit_code()
                if code is not None and not worker.ready:
                    worker.read_status()
                    raise worker.start_failure(code)
                pending = pending or not worker.ready
            if not pending:
                return True
            self._pause()
        return False

    def _log_summary(self) -> None:
        first = self.workers[0]
        assert first is not None and first.summary is not None
        pids = [w.pid for w in self.workers if w is not None]
        for worker in self.workers:
            if worker is not None:
                worker.announced = True
        summary = StartupSummary(first.summary.backend, first.summary.address, first.summary.plugins, len(pids), pids)
        summary.log(self.settings.log.format)

    def _supervise(self) -> None:
        while not self._signals:
            now = time.monotonic()
            for slot, worker in enumerate(self.workers):
                if worker is None:
                    if now >= self._not_before[slot]:
                        self.workers[slot] = self._start()
                    continue
                worker.read_status()
                if worker.ready and not worker.announced:
                    worker.announced = True
                    self._retries[slot] = 0
                    logger.info("Worker process %d serves.", worker.pid)
                code = worker.exit_code()
                if code is not None:
                    self._replace(slot, worker, code, now)
            self._pause()

    def _replace(self, slot: int, worker: WorkerProcess, code: int, now: float) -> None:
        worker.close()
        self._forget(worker)
        if worker.ready:
            logger.warning("Worker process %d %s; starting a new one.", worker.pid, describe_exit(code))
            self.workers[slot] = self._start()
            return
        pause = RETRY_PAUSES[min(self._retries[slot], len(RETRY_PAUSES) - 1)]
        self._retries[slot] += 1
        reason = worker.error[1] if worker.error is not None else "see its log above"
        logger.error(
            "Worker process %d %s before it was ready (%s); starting another in %.0f s.",
            worker.pid,
            describe_exit(code),
            reason,
            pause,
        )
        self.workers[slot] = None
        self._not_before[slot] = now + pause

    def _forget(self, worker: WorkerProcess) -> None:
        if self.metrics_dir is not None:
            from prometheus_client import multiprocess

            # Its live gauges (requests in flight) end with it; its counters stay in the totals.
            mark_process_dead: Any = multiprocess.mark_process_dead  # untyped
            mark_process_dead(worker.pid, self.metrics_dir)

    def _stop_all(self) -> None:
        # Closed first: once the workers have closed their copies too, new connections are refused.
        self.sock.close()
        running = [w for w in self.workers if w is not None]
        for worker in running:
            worker.send(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.server.shutdown_timeout_s + STOP_GRACE
        for worker in running:
            code = worker.wait(max(0.0, deadline - time.monotonic()))
            if code is None:
                logger.error(
                    "Worker process %d did not stop within `server.shutdown_timeout_s` + %.0f s; killing it.",
                    worker.pid,
                    STOP_GRACE,
                )
                code = worker.stop(0)
            elif code not in (0, -signal.SIGTERM, -signal.SIGINT) and worker.ready:
                logger.warning("Worker process %d %s while stopping.", worker.pid, describe_exit(code))
            worker.close()


def serve_workers(settings: Settings) -> None:
    """``framex run`` with ``server.workers`` > 1: supervise the workers until SIGTERM / Ctrl-C."""
    sock = bind_socket(settings.server.host, settings.server.port)
    metrics_dir = tempfile.mkdtemp(prefix="framex-metrics-") if settings.metrics.enabled else None
    try:
        Supervisor(settings, sock, metrics_dir).run()
    finally:
        sock.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
