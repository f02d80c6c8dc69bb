"""Declares a handler with two body models: not allowed."""

from pydantic import BaseModel

from framex.plugin import PluginMetadata, on_request

__plugin_meta__ = PluginMetadata(name="two_bodies")


class A(BaseModel):
    a: int


class B(BaseModel):
    b: int


@on_request("/two", methods=["POST"])
async def two(a: A, b: B) -> int:
    return a.a + b.b
