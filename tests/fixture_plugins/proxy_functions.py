"""``@on_proxy`` functions, imported by both sides of a proxy-function call."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from framex.plugin import on_proxy


class Point(BaseModel):
    x: int
    y: int


class Summary(BaseModel):
    # Binary in a model: the model says how it travels (base64 here, not UTF-8 text).
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    total: int
    later: datetime
    blob: bytes
    moved: Point
    served_by: str


@on_proxy()
async def summarize(items: list[int], when: datetime, blob: bytes, point: Point, shift: int = 1) -> Summary:
    """Everything the encoding carries: lists, datetimes, bytes, models, defaults."""
    return Summary(
        total=sum(items),
        later=when + timedelta(hours=1),
        blob=blob[::-1],
        moved=Point(x=point.x + shift, y=point.y + shift),
        served_by=os.environ.get("PROXY_TEST_SERVICE", "here"),
    )


@on_proxy()
async def raw_bytes(data: bytes) -> bytes:
    return data + b"\x00\xff"


@on_proxy()
async def explode() -> int:
    raise RuntimeError("secret detail")
