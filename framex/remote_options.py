"""``RemoteOptions``: how calls of one ``@remote`` function run, checked when it is decorated.

Each option states its constraint in its annotation (pydantic ``Field`` metadata) next to
the fix a user is told when a value breaks it (``Fix``). One pydantic model, derived from
the annotations, does the checking; one formatter turns its first error into the message.
The options object itself is a plain frozen dataclass, so the per-call path reads plain
attributes and compares ``opts is DEFAULT_OPTIONS``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, ValidationError, create_model

Executor = Literal["thread", "process"]


@dataclass(frozen=True)
class Fix:
    """What a user is told when an option's value is refused, and as which exception."""

    text: str
    error: type[Exception] = ValueError


def _as_tuple(value: Any) -> Any:
    # `retry_on=ConnectionError` means `(ConnectionError,)`.
    return value if isinstance(value, tuple) else (value,)


@dataclass(frozen=True)
class RemoteOptions:
    """How calls of one ``@remote`` function run. Validated when the function is decorated."""

    timeout: Annotated[float | None, Field(gt=0), Fix("give a number of seconds > 0, or None")] = None
    """Seconds the ``await`` may take in all (retries included) before `RemoteTimeoutError`."""
    retries: Annotated[int, Field(ge=0), Fix("give a whole number >= 0")] = 0
    """Run again up to this many times when the call raises one of ``retry_on``."""
    retry_on: Annotated[
        tuple[type[BaseException], ...],
        BeforeValidator(_as_tuple),
        Field(min_length=1),
        Fix("give exception classes, e.g. (ConnectionError,)", TypeError),
    ] = (Exception,)
    max_concurrency: Annotated[int | None, Field(ge=1), Fix("give a whole number >= 1, or None")] = None
    """At most this many executions at once from this process; the rest wait in order."""
    num_cpus: Annotated[float | None, Field(ge=0), Fix("give a number >= 0, or None")] = None
    num_gpus: Annotated[float | None, Field(ge=0), Fix("give a number >= 0, or None")] = None
    resources: Annotated[
        Mapping[str, Annotated[float, Field(ge=0)]] | None, Fix("give a mapping of names to amounts >= 0")
    ] = field(default=None, hash=False)
    """Ray task resources; the local backend ignores them (with one warning)."""
    executor: Annotated[Executor | None, Fix("use 'thread' or 'process' (or None)")] = None
    """Local backend: ``thread`` or ``process``; None takes ``local.executor``."""
    batch_size: Annotated[int | None, Field(ge=1), Fix("give a whole number >= 1, or None (no batching)")] = None
    """Gather concurrent calls into one execution of up to this many items (see :mod:`framex.batching`)."""
    batch_wait_ms: Annotated[float, Field(ge=0), Fix("give a number of milliseconds >= 0")] = 0
    """How long the first call of a batch waits for more; 0: run at once, gather while a batch runs."""

    ray_resources: Mapping[str, Any] = field(init=False, repr=False, compare=False, hash=False)
    """The Ray task options among these (``num_cpus``, ``num_gpus``, ``resources``); empty when none is set."""

    def __post_init__(self) -> None:
        given = {name: getattr(self, name) for name in OPTION_NAMES}
        try:
            checked = _Checked.model_validate(given)
        except ValidationError as exc:
            raise _refusal(exc, given) from None
        for name in OPTION_NAMES:
            object.__setattr__(self, name, getattr(checked, name))
        if self.batch_wait_ms and self.batch_size is None:
            raise ValueError(
                f"@remote(batch_wait_ms={self.batch_wait_ms!r}) needs `batch_size`: the wait is how long a batch "
                "gathers calls."
            )
        ray = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "resources": self.resources}
        # Computed once here: the local backend looks at it on every call.
        resources = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in ray.items() if v is not None}
        object.__setattr__(self, "ray_resources", types.MappingProxyType(resources))


OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(RemoteOptions) if f.init)
"""The keyword arguments ``@remote(...)`` and ``.options(...)`` accept."""

_HINTS = typing.get_type_hints(RemoteOptions, include_extras=True)
_FIXES: dict[str, Fix] = {
    name: next(m for m in _HINTS[name].__metadata__ if isinstance(m, Fix)) for name in OPTION_NAMES
}
_SPEC: dict[str, Any] = {name: (_HINTS[name], ...) for name in OPTION_NAMES}
# Strict: no silent conversions (`retries=True` or `timeout="5"` are refused, not coerced).
_Checked = create_model("RemoteOptions", __config__=ConfigDict(strict=True, extra="forbid"), **_SPEC)


def _refusal(exc: ValidationError, given: Mapping[str, Any]) -> Exception:
    """The first refused option as ``@remote(name=value): fix.``, raised as that option's exception class."""
    name = str(exc.errors()[0]["loc"][0])
    fix = _FIXES[name]
    return fix.error(f"@remote({name}={given[name]!r}): {fix.text}.")


DEFAULT_OPTIONS = RemoteOptions()
"""The options of ``@remote()`` without arguments; the call path checks ``opts is DEFAULT_OPTIONS``."""
