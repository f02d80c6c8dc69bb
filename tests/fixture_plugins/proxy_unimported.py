"""An ``@on_proxy`` function in a module no test imports: a caller naming it must not import it."""

from __future__ import annotations

from framex.plugin import on_proxy


@on_proxy()
async def never_run() -> str:
    return "imported after all"
