"""Cache ``key_builder`` functions written for FrameX-kit: ``(request, context, request_kwargs)``.

FrameX calls a key builder with the handler's arguments by name; the kit called it with
the request, a cache context and the arguments as a dict. Both shapes work.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from starlette.requests import Request


class KitCacheContext:
    """The kit's cache context argument; FrameX does not list the stored entries to key builders."""

    def keys(self) -> list[str]:
        return []

    def metadata(self) -> dict[str, Any]:
        return {}


def _kit_style(key_builder: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(key_builder).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.name == "request_kwargs" for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return (
        len(positional) >= 2 and positional[0].name == "request" and positional[1].name in ("context", "cache_context")
    )


def key_function(key_builder: Callable[..., Any]) -> Callable[[Request, dict[str, Any]], Any]:
    """How to call ``key_builder`` for one request, whichever shape it has (decided once, per route)."""
    if not _kit_style(key_builder):
        return lambda request, kwargs: key_builder(**kwargs)
    params = inspect.signature(key_builder).parameters
    if "request_kwargs" in params:
        return lambda request, kwargs: key_builder(request, KitCacheContext(), request_kwargs=dict(kwargs))
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 3:
        return lambda request, kwargs: key_builder(request, KitCacheContext(), dict(kwargs))
    return lambda request, kwargs: key_builder(request, KitCacheContext())
