"""Where a configuration document comes from: the YAML file (with ``${VAR}`` /
``${VAR:default}`` interpolation), ``FRAMEX__A__B=value`` environment variables and
keyword overrides, merged before :mod:`framex.config` validates them."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from framex.consts import CONFIG_ENV, DEFAULT_CONFIG_PATH, ENV_PREFIX
from framex.errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")


def _interpolate(node: Any, path: str, source: str, parents: set[int] | None = None) -> Any:
    if isinstance(node, (dict, list)):
        parents = set() if parents is None else parents
        if id(node) in parents:
            # `a: &x [*x]`: PyYAML builds a list that contains itself.
            raise ConfigError(
                f"{source}: `{path or '(top level)'}` contains itself: a YAML alias (`*name`) is used inside "
                "the anchor (`&name`) it refers to. Write the value out instead."
            )
        parents.add(id(node))
        try:
            if isinstance(node, dict):
                return {k: _interpolate(v, f"{path}.{k}" if path else str(k), source, parents) for k, v in node.items()}
            return [_interpolate(v, f"{path}[{i}]", source, parents) for i, v in enumerate(node)]
        finally:
            parents.discard(id(node))
    if not isinstance(node, str) or "${" not in node:
        return node

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name, default)
        if value is None:
            raise ConfigError(
                f"{source}: `{path}` uses `${{{name}}}` but the environment variable `{name}` "
                f"is not set. Set it, or give a default: `${{{name}:value}}`."
            )
        return value

    replaced = _VAR.sub(replace, node)
    # A value that is exactly one placeholder takes the type YAML gives its text, so
    # `port: ${PORT:8080}` is an int and `debug: ${DEBUG:false}` a bool.
    if _VAR.fullmatch(node):
        return _parse_scalar(replaced)
    return replaced


def _parse_scalar(text: str) -> Any:
    """The value of an environment variable or a lone ``${VAR}``.

    ``[a, b]`` and ``{k: v}`` are read as YAML flow collections; JSON scalars (numbers,
    ``true``, ``false``, ``null``) become those; anything else stays a string, so
    ``0123`` or ``yes`` keep their text.
    """
    stripped = text.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return yaml.safe_load(stripped)
        except (yaml.YAMLError, ValueError, RecursionError):
            # ValueError: a value PyYAML cannot build (`[2024-13-45]`, an int of 5000 digits).
            return text
    try:
        value = json.loads(stripped)
    except ValueError:
        return text
    return value if value is None or isinstance(value, (bool, int, float)) else text


def read_yaml(path: Path) -> dict[str, Any]:
    """Read one YAML configuration file into a dict, with interpolation applied."""
    if not path.is_file():
        raise ConfigError(
            f"Configuration file `{path}` does not exist. Pass an existing file with "
            f"`--config PATH` or `{CONFIG_ENV}=PATH`."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"`{path}` is not UTF-8 text (byte {exc.start} cannot be decoded). Save the file as UTF-8."
        ) from None
    except OSError as exc:
        raise ConfigError(f"Configuration file `{path}` cannot be read: {exc.strerror or exc}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"`{path}` is not valid YAML{where}: {problem}. Fix the syntax there.") from None
    except ValueError as exc:
        # PyYAML's constructors raise it for values they cannot build: an impossible date
        # (`2024-13-45`), an integer of thousands of digits.
        raise ConfigError(f"`{path}` holds a value YAML cannot read: {exc}. Fix it, or quote it as a string.") from None
    except RecursionError:
        raise ConfigError(f"`{path}` is nested too deeply to be read. Flatten the structure.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"`{path}` must hold a mapping of settings (like `adapter: local`), not a {type(data).__name__}."
        )
    try:
        interpolated: dict[str, Any] = _interpolate(data, "", f"`{path}`")
    except RecursionError:
        raise ConfigError(f"`{path}` is nested too deeply to be read. Flatten the structure.") from None
    return interpolated


def env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Collect ``FRAMEX__A__B=value`` variables as a nested dict.

    Returns the dict and, for error messages, which variable set which key path.
    """
    tree: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or len(name) == len(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__")]
        if any(not k for k in keys):
            raise ConfigError(f"Environment variable `{name}` has an empty key; use `FRAMEX__SECTION__KEY=value`.")
        path = ".".join(keys)
        for other_path, other in origin.items():
            # `FRAMEX__SERVER` and `FRAMEX__SERVER__PORT`: one would silently replace the other.
            if other_path == path or path.startswith(other_path + ".") or other_path.startswith(path + "."):
                raise ConfigError(
                    f"Environment variables `{other}` and `{name}` both set `{min(path, other_path, key=len)}`. "
                    "Unset one of them."
                )
        set_path(tree, keys, _parse_scalar(raw))
        origin[path] = name
    return tree, origin


def set_path(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    """Put ``value`` at ``keys`` in ``tree``, making the dicts on the way."""
    node = tree
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value


def nest_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``server__port=9000`` style keys into nested dicts; other keys stay as given."""
    tree: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        keys = key.split("__")
        if len(keys) == 1:
            deep_merge(tree, {key: value})
        else:
            set_path(tree, keys, value)
    return tree


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``extra`` into ``base`` in place (dicts recursively, everything else replaced)."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = dict(value) if isinstance(value, Mapping) else value
    return base


def resolve_config_path(config_path: str | os.PathLike[str] | None) -> Path | None:
    """The file to read: explicit path, else ``FRAMEX_CONFIG``, else ``config/local.yaml`` if present."""
    if config_path is not None:
        return Path(config_path)
    if env_path := os.environ.get(CONFIG_ENV):
        return Path(env_path)
    default = Path(DEFAULT_CONFIG_PATH)
    return default if default.is_file() else None
