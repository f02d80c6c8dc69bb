"""What the console says about the backend that runs ``@remote`` work.

Local: the thread and process pools, as the executors see them now. Ray: the cluster's
nodes and their resources, asked of Ray in a worker thread (the calls block), and only when
this process is connected already: the console never starts Ray.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from framex.adapters.local import LocalAdapter

if TYPE_CHECKING:
    from framex.adapters.base import Adapter


async def describe_backend(adapter: Adapter) -> dict[str, Any]:
    """The backend's name and what it is doing now."""
    info: dict[str, Any] = {"name": adapter.name}
    if isinstance(adapter, LocalAdapter):
        info["executor"] = adapter.executor
        info["pools"] = {name: asdict(use) if use is not None else None for name, use in adapter.usage().items()}
        info["pool_sizes"] = {"threads": adapter.max_workers, "processes": adapter.max_processes}
    elif adapter.name == "ray":
        info["cluster"] = await asyncio.to_thread(ray_cluster)
    return info


def ray_cluster() -> dict[str, Any]:
    """The Ray cluster this process is connected to: its nodes and resources (blocking)."""
    ray: Any = sys.modules.get("ray")  # not imported: not started by this process either
    if ray is None or not ray.is_initialized():
        return {"connected": False, "nodes": [], "resources": {"total": {}, "available": {}}}
    nodes = [
        {
            "id": node.get("NodeID", ""),
            "address": node.get("NodeManagerAddress", ""),
            "hostname": node.get("NodeManagerHostname", ""),
            "alive": bool(node.get("Alive", False)),
            "resources": _amounts(node.get("Resources", {})),
        }
        for node in ray.nodes()
    ]
    return {
        "connected": True,
        "nodes": nodes,
        "resources": {"total": _amounts(ray.cluster_resources()), "available": _amounts(ray.available_resources())},
    }


def _amounts(resources: dict[str, Any]) -> dict[str, float]:
    # `node:<ip>` markers are bookkeeping of Ray's scheduler, not capacity.
    return {name: float(amount) for name, amount in sorted(resources.items()) if not name.startswith("node:")}
