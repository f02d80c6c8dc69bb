"""A class-based plugin: typed config, calls to other plugins, a body model and a stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from pydantic import BaseModel, Field

from framex.plugin import BasePlugin, PluginMetadata, call_plugin_api, on_register, on_request, remote


class GreeterConfig(BaseModel):
    greeting: str = "Hello"
    punctuation: str = "!"
    stream_delay_s: float = Field(0.0, ge=0)


__plugin_meta__ = PluginMetadata(
    name="greeter",
    version="1.0.0",
    description="Greets people, using the echo and demo plugins.",
    author="FrameX",
    required_remote_apis=["/api/v1/echo", "demo.run_job"],
    config_class=GreeterConfig,
)


class Person(BaseModel):
    name: str = Field(min_length=1)
    age: int = Field(ge=0)
    languages: list[str] = []


@remote()
def shout(text: str) -> str:
    return text.upper()


@on_register()
class GreeterPlugin(BasePlugin):
    config: GreeterConfig

    async def on_start(self) -> None:
        # Another plugin's API is usable already while this one starts.
        self.sample = await call_plugin_api("/api/v1/echo", message="ready")

    @on_request("/greeter/hello")
    async def hello(self, name: str = "world", loud: bool = False) -> str:
        """Greet `name` (echoed through the echo plugin)."""
        echoed = await call_plugin_api("/api/v1/echo", message=name)
        text = f"{self.config.greeting}, {echoed}{self.config.punctuation}"
        return await shout.remote(text) if loud else text

    @on_request("/greeter/double")
    async def double(self, x: int) -> dict[str, int]:
        """Double `x` through the demo plugin's function API."""
        return {"x": x, "doubled": await call_plugin_api("demo.run_job", x=x)}

    @on_request("/greeter/profile", methods=["POST"])
    def profile(self, person: Person, polite: bool = True) -> dict[str, object]:
        """A sync handler with a JSON body."""
        opener = self.config.greeting if polite else "Hey"
        return {"greeting": f"{opener}, {person.name}", "adult": person.age >= 18, "languages": person.languages}

    @on_request("/greeter/stream", stream=True)
    async def stream(self, name: str = "world") -> AsyncIterator[dict[str, str]]:
        """Stream a greeting word by word as Server-Sent Events."""
        for word in f"{self.config.greeting} {name}{self.config.punctuation}".split():
            yield {"word": word}
            if self.config.stream_delay_s:
                await asyncio.sleep(self.config.stream_delay_s)

    @on_request("/greeter/ready", raw_response=True)
    async def ready(self) -> dict[str, str]:
        """Unwrapped response: what `on_start` saw."""
        return {"sample": self.sample}
