"""Reading a FrameX-kit project's configuration (:mod:`framex.kit_migrate` converts it).

The kit reads, strongest first: unprefixed environment variables (``SERVER__PORT``,
``PLUGINS__FOO__DEBUG``, ``LOAD_PLUGINS``), ``.env.prod``, ``.env``, ``config.toml`` and
``[tool.framex]`` in ``pyproject.toml``. :func:`find_kit_config` reads the same sources;
:func:`convert` maps every key that has a FrameX equivalent and lists the ones that do
not, with the reason. ``framex run`` uses the result when a project has no FrameX
configuration; ``framex migrate-config`` writes it out as YAML.

This module imports nothing else of FrameX but its errors and the configuration sources,
so the configuration loader can call into it.
"""

from __future__ import annotations

import json
import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framex.config_sources import deep_merge, set_path
from framex.errors import ConfigError

logger = logging.getLogger("framex.config")

TOML_FILE = "config.toml"
PYPROJECT_FILE = "pyproject.toml"
ENV_FILES = (".env", ".env.prod")
"""In the kit's order: ``.env.prod`` wins over ``.env``."""

TOP_KEYS = frozenset(
    {
        "base_ingress_config",
        "server",
        "log",
        "plugins",
        "load_plugins",
        "load_builtin_plugins",
        "test",
        "docs",
        "sentry",
        "auth",
        "repository",
        "cache",
    }
)
SERVER_KEYS = frozenset(
    {
        "host",
        "port",
        "dashboard_host",
        "dashboard_port",
        "use_ray",
        "enable_proxy",
        "legal_proxy_code",
        "num_cpus",
        "excluded_log_paths",
        "ingress_config",
        "reversion",
    }
)
CACHE_KEYS = frozenset({"enabled", "mode", "ttl", "max_size", "file_dir"})

DROPPED_SECTIONS = {
    "sentry": "FrameX has no Sentry integration; call `sentry_sdk.init(...)` in your own entry point.",
    "docs": "FrameX serves the standard /docs and /redoc; the kit's docs UI extras (action buttons, "
    "embedded config files) have no equivalent.",
    "repository": "FrameX does not check plugin releases against GitHub or GitLab.",
    "test": "switches of the kit's own test recording; FrameX's test fixtures need none (testing.md).",
    "log": "loguru output filters; FrameX logs through `logging`: use `log.level` and `log.exclude_paths`.",
}
DROPPED_SERVER = {
    "legal_proxy_code": "FrameX's proxy passes an upstream's real status on and raises `UpstreamError` "
    "for errors; there is no list of accepted codes.",
    "reversion": "FrameX reports its own version and each plugin's at `/version`.",
}


@dataclass
class KitConfig:
    """A kit project's settings, merged from its sources in the kit's order."""

    values: dict[str, Any]
    sources: list[str]
    """What was read, weakest first: file names and ``environment``."""
    origin: dict[str, str] = field(default_factory=dict)
    """Top-level key -> the source that set it last (for messages)."""

    @property
    def where(self) -> str:
        return ", ".join(f"`{s}`" for s in self.sources)


@dataclass
class Conversion:
    """FrameX settings converted from a kit configuration, and what could not be."""

    settings: dict[str, Any]
    use_ray: bool = False
    """The kit's ``server.use_ray`` was true."""
    mapped: list[tuple[str, str]] = field(default_factory=list)
    """(kit key, FrameX key or value)."""
    dropped: list[tuple[str, str]] = field(default_factory=list)
    """(kit key, why it has no equivalent)."""


def _parse_value(raw: str) -> Any:
    # pydantic-settings reads complex values as JSON and leaves scalars to validation.
    text = raw.strip()
    if text[:1] in '[{"' and text:
        try:
            return json.loads(text)
        except ValueError:
            pass
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _kit_key(name: str) -> list[str] | None:
    """``SERVER__PORT`` -> ``["server", "port"]`` when it names a kit setting."""
    keys = name.lower().split("__")
    if keys[0] not in TOP_KEYS or any(not k for k in keys):
        return None
    if len(keys) == 1 and keys[0] not in ("load_plugins", "load_builtin_plugins", "base_ingress_config"):
        return None
    return keys


def read_env_file(path: Path) -> dict[str, Any]:
    """The kit settings a ``.env`` file sets (``KEY=value`` lines); other variables are skipped."""
    tree: dict[str, Any] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, raw = line.removeprefix("export ").partition("=")
        keys = _kit_key(name.strip())
        if keys is None:
            continue
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            raw = raw[1:-1]
        set_path(tree, keys, _parse_value(raw))
    return tree


def read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The kit settings set by unprefixed environment variables (``SERVER__PORT=9000``)."""
    tree: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        keys = _kit_key(name)
        if keys is not None:
            set_path(tree, keys, _parse_value(raw))
    return tree


def read_toml(path: Path, table: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """A TOML file (or one of its tables, e.g. ``("tool", "framex")``); None when the table is absent."""
    try:
        data: Any = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"`{path}` is not valid TOML: {exc}. Fix the syntax there.") from None
    for key in table:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    if not isinstance(data, dict):
        raise ConfigError(f"`{path}`: `[{'.'.join(table)}]` must be a table of settings.")
    return data


def read_kit_file(path: Path) -> dict[str, Any]:
    """One kit configuration file: ``config.toml``, ``pyproject.toml`` or a ``.env`` file."""
    if not path.is_file():
        raise ConfigError(f"Configuration file `{path}` does not exist.")
    if path.name.startswith(".env"):
        return read_env_file(path)
    if path.name == PYPROJECT_FILE:
        found = read_toml(path, ("tool", "framex"))
        if found is None:
            raise ConfigError(f"`{path}` has no `[tool.framex]` table. Pass the file that holds your settings.")
        return found
    return read_toml(path) or {}


def _add(config: KitConfig, values: dict[str, Any], source: str) -> None:
    if not values:
        return
    deep_merge(config.values, values)
    config.sources.append(source)
    for key in values:
        config.origin[key] = source


def find_kit_config(directory: Path, environ: Mapping[str, str]) -> KitConfig | None:
    """The kit configuration of the project in ``directory``, or None when it has none."""
    config = KitConfig({}, [])
    pyproject = directory / PYPROJECT_FILE
    if pyproject.is_file():
        _add(config, read_toml(pyproject, ("tool", "framex")) or {}, f"{PYPROJECT_FILE} [tool.framex]")
    toml_file = directory / TOML_FILE
    if toml_file.is_file():
        _add(config, read_toml(toml_file) or {}, TOML_FILE)
    for name in ENV_FILES:
        if (directory / name).is_file():
            _add(config, read_env_file(directory / name), name)
    _add(config, read_environment(environ), "environment")
    return config if config.sources else None


def kit_config_from_file(path: Path, environ: Mapping[str, str]) -> KitConfig:
    """A kit configuration file named explicitly, with the unprefixed environment over it."""
    config = KitConfig({}, [])
    _add(config, read_kit_file(path), str(path))
    _add(config, read_environment(environ), "environment")
    if not config.sources:
        config.sources.append(str(path))
    return config


def has_kit_config(directory: Path) -> bool:
    """Whether ``directory`` holds a kit configuration file (the environment is not looked at)."""
    return find_kit_config(directory, {}) is not None


__all__ = [
    "CACHE_KEYS",
    "DROPPED_SECTIONS",
    "DROPPED_SERVER",
    "ENV_FILES",
    "PYPROJECT_FILE",
    "SERVER_KEYS",
    "TOML_FILE",
    "TOP_KEYS",
    "Conversion",
    "KitConfig",
    "find_kit_config",
    "has_kit_config",
    "kit_config_from_file",
    "read_env_file",
    "read_environment",
    "read_kit_file",
    "set_path",
]
