"""A hand-written Ray Serve app batching ``vector_job`` with ``@serve.batch``: the peer of FrameX's batched route.

One deployment: a FastAPI ingress (``@serve.ingress``) whose ``GET /api/v1/batched?x=1``
awaits a ``@serve.batch`` method with the batch size and wait of
``bench/apps/batch_plugin.py``; the method runs the batch on a thread, so the replica's
event loop keeps taking requests meanwhile. Responses have FrameX's envelope shape. Run it
as its own process (private Ray instance on 127.0.0.1, as ``bench/apps/serve_app.py``)::

    python -m bench.apps.serve_batch_app --port 8000
"""

import asyncio
import sys
from typing import Any

from fastapi import FastAPI

from bench.apps.batch_plugin import BATCH_SIZE, BATCH_WAIT_MS, vector_job  # imports no Ray

# Sets Ray's environment up, then imports Ray.
from bench.apps.serve_app import envelope, main, serve

app = FastAPI()


@serve.ingress(app)
class BatchIngress:
    """The HTTP entry point, and the batch of every request's item."""

    @app.get("/api/v1/trivial")
    async def trivial(self) -> dict[str, Any]:
        return envelope({"ok": True})

    @app.get("/api/v1/batched")
    async def batched(self, x: int) -> dict[str, Any]:
        return envelope(await self.run(x))

    @serve.batch(max_batch_size=BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_MS / 1000)
    async def run(self, items: list[int]) -> list[int]:
        return await asyncio.to_thread(vector_job, items)


def build(max_ongoing_requests: int) -> Any:
    """The one deployment; it reserves no CPU, like FrameX's."""
    options = {"num_replicas": 1, "max_ongoing_requests": max_ongoing_requests, "ray_actor_options": {"num_cpus": 0}}
    return serve.deployment(BatchIngress, name="batched", **options).bind()


if __name__ == "__main__":
    sys.exit(main(app=build, prog="bench.apps.serve_batch_app"))
