"""What ``call_plugin_api`` works out once per API name and calling plugin, per container.

Resolving a call (loading the configured plugins, finding the API, checking the caller
declared it) and reading the handler's signature happen on the first call only; the
result, a :class:`CallPlan`, is kept by the container's ``call_plans`` provider until
the registry changes (plugins loaded, external APIs added). Later calls only check and
bind their arguments.
"""

from __future__ import annotations

import inspect
from typing import Any

from pydantic import BaseModel

from framex.plugin.loader import Plugin, PluginApi
from framex.plugin.runtime import PluginRuntime

_KEYWORD_KINDS = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class CallPlan:
    """One API as one caller calls it: the API and how its keyword arguments are checked."""

    __slots__ = ("api", "models", "names", "order", "required")

    def __init__(self, api: PluginApi) -> None:
        self.api = api
        params = api.signature.parameters.values()
        self.models: tuple[tuple[str, type[BaseModel]], ...] = tuple(api.model_params.items())
        self.names: frozenset[str] | None = None
        """The parameter names; None when the signature needs ``inspect`` to bind (``**kwargs``)."""
        self.required: frozenset[str] = frozenset(p.name for p in params if p.default is p.empty)
        self.order: tuple[str, ...] | None = None
        """Parameter order, when the handler can see the order of its keyword arguments."""
        if all(p.kind in _KEYWORD_KINDS for p in params):
            self.names = frozenset(p.name for p in params)
            if _takes_var_keyword(api.func):
                self.order = tuple(p.name for p in params)

    def bind(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The handler's arguments from a call's ``kwargs`` (which it may reuse and change).

        Dicts given for a pydantic-model parameter are validated into the model. Raises
        ``TypeError`` naming the API and the parameters it takes.
        """
        names = self.names
        if names is None or not (kwargs.keys() <= names and self.required <= kwargs.keys()):
            arguments = self._bind_slowly(kwargs)
        elif self.order is not None and len(kwargs) > 1:
            # The handler reads its keywords in order: give them in parameter order, as
            # `inspect.Signature.bind` does.
            arguments = {name: kwargs[name] for name in self.order if name in kwargs}
        else:
            arguments = kwargs
        for name, model in self.models:
            value = arguments.get(name)
            if value is not None and not isinstance(value, model):
                arguments[name] = model.model_validate(value)
        return arguments

    def _bind_slowly(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        api = self.api
        params = api.signature.parameters
        try:
            unknown = [name for name in kwargs if name not in params]
            if unknown and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
                raise TypeError(f"unexpected argument(s) {', '.join(f'`{n}`' for n in unknown)}")
            bound = api.signature.bind(**kwargs)
        except TypeError as exc:
            accepted = ", ".join(f"`{p}`" for p in params) or "no arguments"
            raise TypeError(f"API `{api.label}`: {exc}. It takes {accepted}.") from None
        return bound.arguments


class CallPlans:
    """The call plans of one container, by (API name as called, calling plugin)."""

    def __init__(self, runtime: PluginRuntime) -> None:
        self.runtime = runtime
        self._plans: dict[tuple[str, Plugin | None], CallPlan] = {}
        registry = runtime.registry
        # A name may find another API, or several, once plugins or external APIs are added.
        registry.on_load(lambda plugins: self._plans.clear())
        registry.on_external_api(lambda api: self._plans.clear())

    def get(self, name: str, caller: Plugin | None) -> CallPlan:
        """The plan of calling API ``name`` from plugin ``caller`` (None: from outside any plugin).

        Raises what finding the API or checking ``required_remote_apis`` raises; only
        calls that pass are remembered.
        """
        plan = self._plans.get((name, caller))
        if plan is None:
            registry = self.runtime.registry
            registry.load_configured()
            api = registry.get_api(name)
            registry.check_declared(caller, api, name)
            plan = self._plans[name, caller] = CallPlan(api)
        return plan


def _takes_var_keyword(func: Any) -> bool:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return True  # unknown: keep the order
    return any(p.kind is p.VAR_KEYWORD for p in params)
