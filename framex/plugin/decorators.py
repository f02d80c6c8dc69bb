"""``@on_register`` and ``@on_request``: they only record what a plugin declares.

The loader reads these records when it registers a plugin, so importing a plugin module
has no side effect on any container and two containers can serve the same plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from framex.plugin.metadata import ApiType

API_ATTR = "__framex_api__"
REGISTER_ATTR = "__framex_plugin__"

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class ApiSpec:
    """What ``@on_request`` recorded on a handler."""

    path: str | None
    methods: tuple[str, ...]
    call_type: ApiType
    stream: bool = False
    raw_response: bool = False
    api_prefix: bool = True
    tags: tuple[str, ...] | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RegisterSpec:
    """What ``@on_register`` recorded on a plugin class: its deployment options."""

    options: dict[str, Any] = field(default_factory=dict)


def on_request(
    path: str | None = None,
    methods: Sequence[str] | None = None,
    call_type: ApiType | str = ApiType.HTTP,
    stream: bool = False,
    raw_response: bool = False,
    tags: Sequence[str] | None = None,
    api_prefix: bool = True,
    **options: Any,
) -> Callable[[F], F]:
    """Expose a plugin method or module-level function as an API.

    ``path`` is served under ``/api/v1`` unless it already starts with it (or
    ``api_prefix=False``). Without a path the handler is a function API only. Extra
    keyword options (``summary``, ``description``, ``deprecated``, ...) are passed to
    the route.
    """
    try:
        kind = ApiType(call_type)
    except ValueError:
        raise ValueError(
            f"@on_request({path!r}): unknown call_type {call_type!r}; use one of {', '.join(t.value for t in ApiType)}."
        ) from None
    if path is None and kind is not ApiType.FUNC:
        if call_type != ApiType.HTTP:
            raise ValueError(f"@on_request(call_type={kind.value!r}) needs a path to serve over HTTP.")
        kind = ApiType.FUNC
    if path is not None and not path.startswith("/"):
        # As in FrameX-kit: `@on_request("echo")` serves `/api/v1/echo`.
        path = "/" + path
    verbs = tuple(m.upper() for m in (methods or ("GET",)))
    unknown = [m for m in verbs if m not in _METHODS]
    if unknown:
        raise ValueError(f"@on_request({path!r}): unknown HTTP method(s) {unknown}; use {sorted(_METHODS)}.")
    spec = ApiSpec(
        path=path,
        methods=verbs,
        call_type=kind,
        stream=stream,
        raw_response=raw_response,
        api_prefix=api_prefix,
        tags=tuple(tags) if tags is not None else None,
        options=dict(options),
    )

    def decorate(func: F) -> F:
        if not callable(func):
            raise TypeError(f"@on_request({path!r}) decorates a function or method, not {func!r}.")
        setattr(func, API_ATTR, spec)
        return func

    return decorate


def on_register(**deployment_options: Any) -> Callable[[C], C]:
    """Mark a class as a plugin class; its ``@on_request`` methods become APIs.

    ``deployment_options`` (``num_replicas``, ``max_ongoing_requests``,
    ``ray_actor_options``, ...) configure its Ray Serve deployment in Ray mode.
    """

    def decorate(cls: C) -> C:
        if not isinstance(cls, type):
            raise TypeError(f"@on_register() decorates a class, not {cls!r}.")
        setattr(cls, REGISTER_ATTR, RegisterSpec(dict(deployment_options)))
        return cls

    return decorate
