"""A hand-written Ray Serve app serving what FrameX serves for ``bench/apps/ray_plugin.py``.

A FastAPI ingress deployment (``@serve.ingress``) calls a plugin deployment through a
``DeploymentHandle``; the blocking route awaits a ``ray.remote`` task. Responses have
FrameX's envelope shape (same JSON size). Run it as its own process::

    python -m bench.apps.serve_app --port 8000

It starts a private Ray instance on 127.0.0.1, serves until SIGTERM or Ctrl-C, then shuts
Serve and Ray down.
"""

import os

# Before Ray is imported: a private instance then listens on 127.0.0.1 only (as FrameX does).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import ray
from fastapi import FastAPI
from ray import serve as _serve
from ray.serve.handle import DeploymentHandle

# Ray Serve's annotations are partial.
serve: Any = _serve
app = FastAPI()


@ray.remote(max_retries=0)
def blocking_job(ms: int) -> int:
    """Block the Ray worker running this task for ``ms`` milliseconds."""
    time.sleep(ms / 1000)
    return ms


class Plugin:
    """The plugin deployment: the handlers themselves."""

    async def trivial(self) -> dict[str, bool]:
        return {"ok": True}

    async def blocking(self, ms: int) -> int:
        result: int = await blocking_job.remote(ms)
        return result


def envelope(data: Any) -> dict[str, Any]:
    """FrameX's response shape: status, message, timestamp (ms, UTC), data."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    return {"status": 200, "message": "success", "timestamp": now, "data": data}


@serve.ingress(app)
class Ingress:
    """The HTTP entry point: forwards each request to the plugin deployment."""

    def __init__(self, plugin: DeploymentHandle[Any]) -> None:
        self.plugin = plugin

    @app.get("/api/v1/trivial")
    async def trivial(self) -> dict[str, Any]:
        return envelope(await self.plugin.trivial.remote())

    @app.get("/api/v1/blocking")
    async def blocking(self, ms: int = 50) -> dict[str, Any]:
        return envelope(await self.plugin.blocking.remote(ms))


def build(max_ongoing_requests: int) -> Any:
    """The Serve application; deployments reserve no CPU, like FrameX's."""
    options: dict[str, Any] = {
        "num_replicas": 1,
        "max_ongoing_requests": max_ongoing_requests,
        "ray_actor_options": {"num_cpus": 0},
    }
    plugin = serve.deployment(Plugin, name="plugin", **options).bind()
    return serve.deployment(Ingress, name="ingress", **options).bind(plugin)


def main(argv: list[str] | None = None, app: Callable[[int], Any] = build, prog: str = "bench.apps.serve_app") -> int:
    """Start Ray and Serve, deploy ``app(max_ongoing_requests)``, serve until SIGTERM / Ctrl-C, shut down."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=f"Serve the Ray Serve app of {prog}.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the private Ray instance (2)")
    parser.add_argument("--max-ongoing-requests", type=int, default=100, help="per replica, both deployments (100)")
    args = parser.parse_args(argv)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    ray.init(
        address="local",
        num_cpus=args.num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    # After `ray.init`, which installs a SIGTERM handler of its own.
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(app(args.max_ongoing_requests), name="bench", route_prefix="/", blocking=False)
        print(f"serving on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
        stop.wait()
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
