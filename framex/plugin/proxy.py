"""``@on_proxy``: an async function that runs here, or on another FrameX service.

Where it runs is configuration: a function listed in ``plugins.proxy.proxy_functions``
under a service's URL is called there (``POST /api/v1/proxy/remote``), any other runs
in-process. Arguments and results travel as JSON, encoded and decoded against the
function's own annotations on each side (:func:`encode`, :func:`decode`): the receiving
side never imports or builds a type the caller names.
"""

from __future__ import annotations

import functools
import inspect
import sys
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic_core import to_json

from framex.context import get_container

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

WIRE = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64", arbitrary_types_allowed=True)
"""bytes travel as base64; everything else the way pydantic writes and reads JSON."""

REMOTE_PATH = "/api/v1/proxy/remote"
PROXY_ATTR = "__framex_proxy__"


@dataclass(frozen=True)
class ProxyFunction:
    """A function decorated with ``@on_proxy``: its name, the function and its codecs."""

    name: str
    func: Callable[..., Awaitable[Any]]
    arguments: type[BaseModel]
    result: type[BaseModel]
    """One field, ``value``: the return annotation (a model's config cannot be set from outside)."""


Placement = Callable[[str], str | None]
"""The URL of the service that runs the proxy function of this name, or None: run it here."""
RemoteCall = Callable[[str, ProxyFunction, dict[str, Any]], Awaitable[Any]]
"""Runs a proxy function on the service at a URL and returns its decoded result."""


class ProxyFunctions:
    """The ``@on_proxy`` functions of one service: which it serves, and where the others run.

    A function is found by its ``module.function`` name among the modules this process
    has imported; nothing is ever imported for a caller. Where functions run is set by
    the plugin that calls other services (:meth:`place`); until one does, all run here.
    """

    def __init__(self) -> None:
        self._found: dict[str, ProxyFunction] = {}
        self._placement: Placement | None = None
        self._call_remote: RemoteCall | None = None

    def get(self, name: str) -> ProxyFunction | None:
        """The ``@on_proxy`` function of that ``module.function`` name, if this process defines one."""
        record = self._found.get(name)
        if record is None:
            record = _defined(name)
            if record is not None:
                self._found[name] = record
        return record

    def place(self, placement: Placement, call_remote: RemoteCall) -> None:
        """Run the functions ``placement`` names a URL for on that service, through ``call_remote``."""
        self._placement = placement
        self._call_remote = call_remote

    async def call(self, record: ProxyFunction, kwargs: dict[str, Any]) -> Any:
        """Run ``record`` where it is placed: on another service, or here."""
        url = self._placement(record.name) if self._placement is not None else None
        if url is None or self._call_remote is None:
            return await record.func(**kwargs)
        return await self._call_remote(url, record, kwargs)


def _defined(name: str) -> ProxyFunction | None:
    module_name, _, qualname = name.rpartition(".")
    while module_name:
        module = sys.modules.get(module_name)
        if module is not None:
            obj: Any = module
            for part in qualname.split("."):
                obj = getattr(obj, part, None)
            record = getattr(obj, PROXY_ATTR, None)
            return record if isinstance(record, ProxyFunction) and record.name == name else None
        module_name, _, head = module_name.rpartition(".")
        qualname = f"{head}.{qualname}"
    return None


def _arguments_model(name: str, func: Callable[..., Any]) -> type[BaseModel]:
    hints = typing.get_type_hints(func, include_extras=True)
    fields: dict[str, Any] = {}
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise TypeError(f"@on_proxy function `{name}` takes `{param}`; it must take named parameters only.")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints.get(param.name, Any), default)
    model: type[BaseModel] = create_model(
        f"{name.rsplit('.', 1)[-1]}_arguments", __config__=ConfigDict(extra="forbid", **WIRE), **fields
    )
    return model


def on_proxy() -> Callable[[F], F]:
    """Mark an async function as callable on another FrameX service.

    Call it with keyword arguments. It runs in-process unless
    ``plugins.proxy.proxy_functions`` lists its ``module.function`` name under a
    service's URL; then that service runs it and the result comes back decoded to the
    function's return annotation.
    """

    def decorate(func: F) -> F:
        name = f"{func.__module__}.{func.__qualname__}"
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"@on_proxy needs an `async def` function; `{name}` is not one.")
        if "<locals>" in func.__qualname__:
            raise TypeError(f"@on_proxy function `{name}` must be defined at module level, to have a stable name.")
        hints = typing.get_type_hints(func, include_extras=True)
        result = create_model(f"{func.__name__}_result", __config__=WIRE, value=(hints.get("return", Any), ...))
        record = ProxyFunction(name, func, _arguments_model(name, func), result)

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            if args:
                raise TypeError(f"`{name}` is a proxy function: pass its arguments by name.")
            container = get_container()
            runtime = container.runtime()
            if not runtime.started:
                await runtime.start()  # the plugin placing functions elsewhere has set them
            return await container.proxy_functions().call(record, kwargs)

        setattr(wrapper, PROXY_ATTR, record)
        return wrapper  # type: ignore[return-value]

    return decorate


def encode_arguments(record: ProxyFunction, kwargs: dict[str, Any]) -> bytes:
    """The JSON of a call's arguments, checked against the function's parameters."""
    try:
        arguments = record.arguments.model_validate(kwargs)
    except ValidationError as exc:
        raise TypeError(f"`{record.name}`: invalid arguments: {exc}") from None
    return to_json({"func": record.name, "kwargs": arguments.model_dump(mode="json", exclude_unset=True)})


def decode_arguments(record: ProxyFunction, raw_kwargs: Any) -> dict[str, Any]:
    """The arguments of a call received as JSON, validated into the function's types.

    Raises ``ValidationError`` when they do not fit.
    """
    arguments = record.arguments.model_validate_json(to_json(raw_kwargs))
    return {name: getattr(arguments, name) for name in type(arguments).model_fields}


def encode_result(record: ProxyFunction, value: Any) -> Any:
    """A result as JSON-ready data (bytes as base64)."""
    return record.result.model_validate({"value": value}).model_dump(mode="json")["value"]


def decode_result(record: ProxyFunction, data: Any) -> Any:
    """A result received as JSON, validated into the function's return annotation."""
    return record.result.model_validate_json(to_json({"value": data})).value  # type: ignore[attr-defined]
