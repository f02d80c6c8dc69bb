"""What ``call_plugin_api`` works out once per name and caller: kept right as the registry changes,
and arguments checked as ``inspect.Signature.bind`` checks them."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framex import load_plugins
from framex.container import Container
from framex.context import current_plugin
from framex.errors import ApiNotDeclaredError, ApiNotFoundError
from framex.plugin import call_plugin_api
from framex.plugin.call_plans import CallPlan
from framex.plugin.decorators import ApiSpec
from framex.plugin.loader import ExternalApi, PluginApi
from framex.plugin.metadata import ApiType

KW = inspect.Parameter.KEYWORD_ONLY


async def test_a_name_resolved_before_plugins_are_loaded_is_resolved_again(framex_container: Container) -> None:
    assert await call_plugin_api("/api/v1/echo", message="once") == "once"
    load_plugins("tests.fixture_plugins.echo_post")  # POST on the same path: the path alone is ambiguous now
    with pytest.raises(ApiNotFoundError, match="served by several handlers"):
        await call_plugin_api("/api/v1/echo", message="twice")
    assert await call_plugin_api("echo_post.echo_post", message="by name") == "by name"


def external(path: str, method: str, params: list[inspect.Parameter], func: Any) -> ExternalApi:
    spec = ApiSpec(path=path, methods=(method,), call_type=ApiType.HTTP, api_prefix=False)
    return ExternalApi(
        plugin="upstream",
        name=f"upstream:{method} {path}",
        spec=spec,
        func=func,
        owner=None,
        signature=inspect.Signature(params),
        return_type=Any,
        model_params={},
    )


async def test_an_external_api_added_later_is_seen_by_names_resolved_before(framex_container: Container) -> None:
    assert await call_plugin_api("/api/v1/echo", message="once") == "once"

    async def post(**kwargs: Any) -> Any:
        return kwargs

    framex_container.registry().add_external_api(external("/api/v1/echo", "POST", [], post))
    with pytest.raises(ApiNotFoundError, match="served by several handlers"):
        await call_plugin_api("/api/v1/echo", message="twice")


async def test_handlers_that_see_the_order_of_their_keywords_get_them_in_parameter_order(
    framex_container: Container,
) -> None:
    async def forward(**kwargs: Any) -> list[str]:
        return list(kwargs)

    params = [inspect.Parameter("b", KW), inspect.Parameter("a", KW, default=None)]
    params.append(inspect.Parameter("c", KW, default=0))
    framex_container.registry().add_external_api(external("/api/v1/ordered", "GET", params, forward))
    assert await call_plugin_api("/api/v1/ordered", c=3, a=1, b=2) == ["b", "a", "c"]
    assert await call_plugin_api("/api/v1/ordered", b=2) == ["b"]
    with pytest.raises(TypeError, match=r"API `/api/v1/ordered`: missing a required argument: 'b'\. It takes `b`"):
        await call_plugin_api("/api/v1/ordered", a=1)


async def test_a_call_allowed_from_outside_is_still_checked_for_a_plugin(framex_container: Container) -> None:
    assert await call_plugin_api("/api/v1/demo/run", x=1) == 2  # a script: not restricted
    registry = framex_container.registry()
    token = current_plugin.set(registry.plugins["kitchen"])
    try:
        with pytest.raises(ApiNotDeclaredError, match="Plugin `kitchen` called `/api/v1/demo/run`"):
            await call_plugin_api("/api/v1/demo/run", x=1)
    finally:
        current_plugin.reset(token)
    assert await call_plugin_api("/api/v1/demo/run", x=2) == 4


# -- binding: the same outcome as inspect.Signature.bind ---------------------------------


def api_of(params: list[inspect.Parameter], sees_order: bool) -> PluginApi:
    def keywords(**kwargs: Any) -> None: ...

    def named() -> None: ...

    return PluginApi(
        plugin="p",
        name="p.f",
        spec=ApiSpec(path=None, methods=("GET",), call_type=ApiType.FUNC),
        func=keywords if sees_order else named,
        owner=None,
        signature=inspect.Signature(params),
        return_type=Any,
        model_params={},
    )


def outcome(bind: Any, kwargs: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", list(bind(dict(kwargs)).items())
    except TypeError as exc:
        return "error", str(exc)


NAMES = ["a", "b", "c", "d"]


@settings(max_examples=300, deadline=None)
@given(
    defaults=st.lists(st.booleans(), min_size=0, max_size=4),
    given_names=st.lists(st.sampled_from([*NAMES, "x", "y"]), unique=True),
    sees_order=st.booleans(),
)
def test_binding_matches_inspect(defaults: list[bool], given_names: list[str], sees_order: bool) -> None:
    empty = inspect.Parameter.empty
    params = [inspect.Parameter(n, KW, default=0 if d else empty) for n, d in zip(NAMES, defaults, strict=False)]
    plan = CallPlan(api_of(params, sees_order))
    kwargs = {name: i for i, name in enumerate(given_names)}
    fast, reference = outcome(plan.bind, kwargs), outcome(plan._bind_slowly, kwargs)
    if sees_order or fast[0] == "error":
        assert fast == reference
    else:
        assert fast[0] == reference[0] and dict(fast[1]) == dict(reference[1])
