"""The `@remote()` guide's examples, served as routes.

`seed_pattern`, `seed_instance` and `seed_classmethod` hold the guide's code as it is
written there; the handlers below run its call forms.
"""

from __future__ import annotations

from framex.plugin import PluginMetadata, on_request
from plugins.demo.seed_classmethod import Worker as ScaleWorker
from plugins.demo.seed_instance import Worker as TotalWorker
from plugins.demo.seed_pattern import heavy_job, run_job

__plugin_meta__ = PluginMetadata(
    name="demo",
    version="1.0.0",
    description="The @remote() examples: a plain function, an instance method and a classmethod.",
    author="FrameX",
)

__all__ = ["heavy_job", "run_job", "double_21", "total", "scale"]


@on_request("/api/v1/demo/double_21")
async def double_21() -> int:
    """The plain-function example: `await heavy_job.remote(21)`."""
    result = await heavy_job.remote(21)
    return result


@on_request("/api/v1/demo/total", methods=["POST"])
async def total(values: list[int]) -> int:
    """The instance-method example: `await Worker().total.remote(values)`."""
    count = await TotalWorker().total.remote(values)
    return count


@on_request("/api/v1/demo/scale")
async def scale(x: int = 2) -> int:
    """The class-method example: `await Worker.scale.remote(x)`."""
    value = await ScaleWorker.scale.remote(x)
    return value
