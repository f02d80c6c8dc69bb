"""The start-up summary: one INFO record when a service starts serving.

It says what is served and where: the backend, the worker processes, every plugin with
its version and API count, the address and the docs URL. In ``log.format: text`` the
record's message is the whole block; in ``json`` the message is its first line and the
rest are fields of the same record, so either way it is one record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from framex.logs import CONTINUATION

logger = logging.getLogger("framex.run")


@dataclass(frozen=True)
class PluginLine:
    """One served plugin: its name, version and number of APIs."""

    name: str
    version: str
    apis: int


@dataclass(frozen=True)
class StartupSummary:
    """What a service serves and where; :meth:`log` writes it."""

    backend: str
    address: str
    plugins: list[PluginLine]
    workers: int = 1
    """Processes serving HTTP: worker processes, or Ray Serve's ingress replicas."""
    pids: list[int] = field(default_factory=list)

    @classmethod
    def of_plugins(
        cls, backend: str, address: str, plugins: Iterable[Any], workers: int = 1, pids: Iterable[int] = ()
    ) -> StartupSummary:
        """The summary of loaded plugins (:class:`framex.plugin.loader.Plugin` objects)."""
        lines = [PluginLine(p.name, str(p.metadata.version), len(p.apis)) for p in plugins]
        return cls(backend, address, sorted(lines, key=lambda line: line.name), workers, list(pids))

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> StartupSummary:
        """The inverse of :meth:`fields` (a worker process sends its summary this way)."""
        plugins = [PluginLine(**p) for p in fields["plugins"]]
        return cls(fields["backend"], fields["address"], plugins, fields["workers"], list(fields["pids"]))

    def fields(self) -> dict[str, Any]:
        """The summary as plain JSON-able fields (those of the JSON record)."""
        doc = asdict(self)
        doc["docs"] = self.docs
        return doc

    @property
    def docs(self) -> str:
        """Where the interactive API docs are."""
        return f"{self.address}/docs"

    def headline(self) -> str:
        return f"FrameX is serving on {self.address} (Ctrl-C to stop)"

    def block(self) -> str:
        """The summary as lines of text, the headline first."""
        if self.backend == "ray":
            workers = f"Ray Serve, {self.workers} HTTP ingress replica{'s' if self.workers != 1 else ''}"
        else:
            workers = f"{self.workers} worker process{'es' if self.workers != 1 else ''}"
        if self.pids:
            workers += f" (pid {', '.join(map(str, self.pids))})"
        plugins = [f"    {p.name} {p.version}: {p.apis} API{'s' if p.apis != 1 else ''}" for p in self.plugins]
        return "\n".join(
            [
                self.headline(),
                f"  backend: {self.backend}, {workers}",
                f"  plugins: {len(self.plugins)}",
                *plugins,
                f"  docs: {self.docs}",
            ]
        )

    def log(self, fmt: str) -> None:
        """Write the summary as one INFO record on ``framex.run``, for ``log.format`` ``fmt``.

        In the text format the headline is the message and the rest follows as its block.
        """
        if fmt == "json":
            logger.info(self.headline(), extra=self.fields())
            return
        headline, *rest = self.block().split("\n")
        logger.info(headline, extra={**self.fields(), CONTINUATION: rest})


def url_of(host: str, port: int) -> str:
    """The base URL of a server listening on ``host:port``."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
