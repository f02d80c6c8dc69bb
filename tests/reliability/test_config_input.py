"""Any configuration document gives a valid `Settings` or a `ConfigError` with a message, nothing else.

Property-based (hypothesis) over YAML files (built from the schema's own keys, from
tricky fragments, as free text and as raw bytes), `FRAMEX__*` environments, `${VAR}`
placeholders and keyword overrides; then one regression test per problem found.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from framex.config import Settings, load_settings
from framex.errors import ConfigError
from tests.reliability.conftest import CI, Sizes


def _model_keys(model: type[BaseModel], into: dict[str, list[str]], prefix: str = "") -> dict[str, list[str]]:
    into[prefix] = sorted(model.model_fields)
    for name, field in model.model_fields.items():
        for candidate in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                _model_keys(candidate, into, f"{prefix}.{name}" if prefix else name)
    return into


SECTIONS = _model_keys(Settings, {})
"""Key names by section path: "" (top level), "server", "server.cors", ..."""
KEYS = sorted({key for keys in SECTIONS.values() for key in keys})
VARS = ["RELIABILITY_A", "RELIABILITY_B", "RELIABILITY_UNSET"]

TRICKY = [
    "~",
    "''",
    "yes",
    "0o17",
    "0123",
    "1_000",
    "0x1F",
    ".nan",
    "-.inf",
    "1e400",
    "9" * 5000,
    "2024-13-45",
    "2024-02-30 25:61:61",
    "!!binary 'zz'",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!!python/object:os.system x",
    "!!int 'x'",
    "!!float 'x'",
    "&a [*a]",
    "&b {k: *b}",
    "*undefined",
    "[" * 600 + "]" * 600,
    "{" * 300 + "}" * 300,
    "${RELIABILITY_A}",
    "${RELIABILITY_UNSET}",
    "${RELIABILITY_UNSET:8080}",
    "${RELIABILITY_B:[a, b]}",
    "x ${RELIABILITY_A} y",
    "${",
    "'unterminated",
    "[1, 2",
    "{a: 1, a: 2}",
    "? [a, b]\n  : c",
    "|\n  block",
    "http://a.example.com",
    "*",
    "/metrics",
    "/api/*",
    "-1",
    "65536",
    "\t",
    "\x00",
    "\ufeff",
    "\u2028",
]
"""Scalars and fragments that YAML, the interpolation or the models handle specially."""

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["local", "ray", "thread", "process", "text", "json", "info", "memory", "file", "*"]),
    st.sampled_from(TRICKY),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers(), st.none())
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4), max_leaves=12
)


def section(path: str) -> st.SearchStrategy[dict[Any, Any]]:
    """A mapping shaped like the schema's section ``path``: its own keys, sometimes others."""
    fields = {}
    for key in SECTIONS[path]:
        child = f"{path}.{key}" if path else key
        fields[key] = st.deferred(lambda child=child: section(child)) | values if child in SECTIONS else values
    return st.fixed_dictionaries({}, optional=fields) | st.dictionaries(keys, values, max_size=3)


def _fragment_line(key: str, value: str) -> str:
    return f"{key}: {value}"


# Text a person could have written: lines of `key: value` with tricky values, nested or not.
fragment_documents = st.lists(
    st.one_of(
        st.builds(_fragment_line, st.sampled_from(KEYS), st.sampled_from(TRICKY) | st.text(max_size=12)),
        st.builds(
            lambda parent, child, value: f"{parent}:\n  {child}: {value}",
            st.sampled_from([p for p in SECTIONS if p and "." not in p]),
            st.sampled_from(KEYS),
            st.sampled_from(TRICKY) | st.text(max_size=12),
        ),
    ),
    max_size=6,
).map("\n".join)


def _dump(document: Any) -> str:
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


documents = st.one_of(
    section("").map(_dump),
    fragment_documents,
    st.lists(st.sampled_from([*":-[]{},&*!|>'\"#%@`?~ \n\tabcxyz019$", "${", "\\u", "\\x"]), max_size=60).map("".join),
    st.binary(max_size=40),
)

env_names = st.lists(st.sampled_from([p for p in SECTIONS] + KEYS), min_size=1, max_size=3).map(
    lambda parts: "FRAMEX__" + "__".join(p.replace(".", "__").upper() for p in parts if p)
) | st.sampled_from(["FRAMEX__", "FRAMEX___", "FRAMEX__SERVER____PORT", "FRAMEX_CONFIGX", "framex__server__port"])
env_values = st.sampled_from(TRICKY) | st.text(max_size=15) | st.integers().map(str)
environments = st.dictionaries(env_names, env_values, max_size=4)
placeholder_values = st.dictionaries(
    st.sampled_from(VARS[:2]),
    (st.sampled_from(TRICKY) | st.text(max_size=10)).filter(lambda v: "\x00" not in v),  # not allowed in os.environ
)
overrides = st.dictionaries(
    st.sampled_from(["adapter", "server__port", "server__host", "local__max_workers", "load_plugins", "plugins", "log"])
    | st.text(max_size=8),
    values,
    max_size=3,
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config-input")


@pytest.fixture(autouse=True)
def _placeholders_unset() -> Iterator[None]:
    with patch.dict(os.environ):
        for name in VARS:
            os.environ.pop(name, None)
        yield


def load(path: Path, document: str | bytes, environ: dict[str, str], variables: dict[str, str], extra: Any) -> None:
    """The property: `load_settings` returns `Settings` or raises `ConfigError` with a message."""
    if isinstance(document, bytes):
        path.write_bytes(document)
    else:
        path.write_text(document, encoding="utf-8", errors="surrogatepass")
    with patch.dict(os.environ, variables):
        try:
            result = load_settings(path, extra, environ=environ)
        except ConfigError as exc:
            message = str(exc)
            assert message.strip() and "Traceback" not in message
            assert len(message) < 20_000, "a message must stay readable"
        else:
            assert isinstance(result, Settings)


def test_any_config_document_is_settings_or_config_error(scratch: Path, sizes: Sizes) -> None:
    @settings(
        max_examples=sizes.config_examples,
        deadline=None,
        database=None,
        derandomize=sizes is CI,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(document=documents, environ=environments, variables=placeholder_values, extra=overrides)
    @example(document="server:\n  port: " + "9" * 5000, environ={}, variables={}, extra={})
    @example(document="a: &a [*a]", environ={"FRAMEX__SERVER__PORT": "&a [*a]"}, variables={}, extra={})
    def check(document: str | bytes, environ: dict[str, str], variables: dict[str, str], extra: Any) -> None:
        load(scratch / "document.yaml", document, environ, variables, extra)

    check()


# -- regressions: each of these raised something other than a ConfigError -------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("server:\n  port: " + "9" * 5000, r"holds a value YAML cannot read: Exceeds the limit"),
        ("server:\n  title: 2024-13-45\n", r"holds a value YAML cannot read: month must be in 1\.\.12"),
        ("load_plugins: &a [*a]\n", r"`load_plugins\[0\]` contains itself: a YAML alias"),
        ("plugins: &p {x: *p}\n", r"`plugins\.x` contains itself"),
        ("plugins: {x: " + "[" * 1200 + "]" * 1200 + "}\n", r"is nested too deeply to be read"),
    ],
    ids=["huge-int", "impossible-date", "self-referencing-list", "self-referencing-map", "deep-nesting"],
)
def test_yaml_values_python_cannot_build_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "framex.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path, environ={})


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "framex.yaml"
    path.write_bytes(b"server: {title: caf\xe9}\n")
    with pytest.raises(ConfigError, match=r"framex\.yaml` is not UTF-8 text \(byte 19 cannot be decoded\)"):
        load_settings(path, environ={})


def test_environment_values_yaml_cannot_build_stay_text(tmp_path: Path) -> None:
    environ = {"FRAMEX__SERVER__TITLE": "[2024-13-45]", "FRAMEX__PLUGINS__P": "{n: " + "9" * 5000 + "}"}
    with pytest.raises(ConfigError, match=r"`plugins\.p` \(set by environment variable `FRAMEX__PLUGINS__P`\)"):
        load_settings(None, environ=environ)
    assert load_settings(None, environ={"FRAMEX__SERVER__TITLE": "[2024-13-45]"}).server.title == "[2024-13-45]"


@pytest.mark.parametrize("order", [1, -1], ids=["section-first", "key-first"])
def test_overlapping_environment_variables_are_an_error_in_any_order(order: int) -> None:
    # Before: the later variable silently replaced the earlier one, so the result hung on
    # the environment's order.
    environ = dict(list({"FRAMEX__SERVER": "{port: 1}", "FRAMEX__SERVER__PORT": "2"}.items())[::order])
    with pytest.raises(ConfigError, match=r"`FRAMEX__SERVER` and `FRAMEX__SERVER__PORT` both set `server`"):
        load_settings(None, environ=environ)


def test_given_values_are_abbreviated_in_messages() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, {"server": {"port": list(range(10_000))}}, environ={})
    assert len(str(info.value)) < 400 and "..." in str(info.value)
