"""Reading a FrameX-kit project's configuration and converting it to FrameX settings.

The kit reads, strongest first: unprefixed environment variables (``SERVER__PORT``,
``PLUGINS__FOO__DEBUG``, ``LOAD_PLUGINS``), ``.env.prod``, ``.env``, ``config.toml`` and
``[tool.framex]`` in ``pyproject.toml``. :func:`find_kit_config` reads the same sources;
:func:`convert` maps every key that has a FrameX equivalent and lists the ones that do
not, with the reason. ``framex run`` uses the result when a project has no FrameX
configuration; ``framex migrate-config`` writes it out as YAML.

This module imports nothing else of FrameX but its errors, so the configuration loader
can call into it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from framex.errors import ConfigError

logger = logging.getLogger("framex.config")

TOML_FILE = "config.toml"
PYPROJECT_FILE = "pyproject.toml"
ENV_FILES = (".env", ".env.prod")
"""In the kit's order: ``.env.prod`` wins over ``.env``."""

_TOP_KEYS = frozenset(
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
_SERVER_KEYS = frozenset(
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
_CACHE_KEYS = frozenset({"enabled", "mode", "ttl", "max_size", "file_dir"})

_DROPPED_SECTIONS = {
    "sentry": "FrameX has no Sentry integration; call `sentry_sdk.init(...)` in your own entry point.",
    "docs": "FrameX serves the standard /docs and /redoc; the kit's docs UI extras (action buttons, "
    "embedded config files) have no equivalent.",
    "repository": "FrameX does not check plugin releases against GitHub or GitLab.",
    "test": "switches of the kit's own test recording; FrameX's test fixtures need none (testing.md).",
    "log": "loguru output filters; FrameX logs through `logging`: use `log.level` and `log.exclude_paths`.",
}
_DROPPED_SERVER = {
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
    if keys[0] not in _TOP_KEYS or any(not k for k in keys):
        return None
    if len(keys) == 1 and keys[0] not in ("load_plugins", "load_builtin_plugins", "base_ingress_config"):
        return None
    return keys


def _set(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    node = tree
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


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
        _set(tree, keys, _parse_value(raw))
    return tree


def read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The kit settings set by unprefixed environment variables (``SERVER__PORT=9000``)."""
    tree: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        keys = _kit_key(name)
        if keys is not None:
            _set(tree, keys, _parse_value(raw))
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
    _merge(config.values, values)
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


def _builtin_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(f"framex.builtins.{name}") is not None
    except (ImportError, ValueError):
        return False


def _unknown(config: KitConfig, key: str, accepted: frozenset[str]) -> ConfigError:
    source = config.origin.get(key.split(".", 1)[0])
    where = f"`{source}`" if source else config.where
    return ConfigError(
        f"`{key}` in {where} is not a FrameX-kit setting either. Accepted keys here: "
        f"{', '.join(sorted(accepted))}. Fix the spelling or remove it."
    )


def convert(config: KitConfig) -> Conversion:
    """Map a kit configuration to a FrameX settings document.

    Raises :class:`ConfigError` for keys the kit itself would reject.
    """
    values = config.values
    out: dict[str, Any] = {}
    conv = Conversion(out)
    for key in values:
        if key not in _TOP_KEYS:
            raise _unknown(config, key, _TOP_KEYS)

    server = values.get("server") or {}
    for key, value in server.items():
        kit_key = f"server.{key}"
        if key not in _SERVER_KEYS:
            raise _unknown(config, kit_key, _SERVER_KEYS)
        if key in ("host", "port"):
            _set(out, ["server", key], value)
            conv.mapped.append((kit_key, kit_key))
        elif key == "use_ray":
            conv.use_ray = bool(value)
            out["adapter"] = "ray" if value else "local"
            conv.mapped.append((kit_key, f"adapter: {out['adapter']}"))
        elif key == "enable_proxy":
            if value:
                conv.mapped.append((kit_key, "the built-in `proxy` plugin (in `load_builtin_plugins`)"))
            else:
                conv.mapped.append((kit_key, "no `proxy` needed unless `load_builtin_plugins` lists it"))
        elif key in ("dashboard_host", "dashboard_port"):
            _set(out, ["ray", "dashboard"], True)
            conv.mapped.append((kit_key, "ray.dashboard: true (Ray's own dashboard address)"))
        elif key == "num_cpus":
            if isinstance(value, int) and value > 0:
                _set(out, ["ray", "num_cpus"], value)
                conv.mapped.append((kit_key, "ray.num_cpus"))
            else:
                conv.mapped.append((kit_key, "ray.num_cpus: null (all CPUs)"))
        elif key == "excluded_log_paths":
            _set(out, ["log", "exclude_paths"], value)
            conv.mapped.append((kit_key, "log.exclude_paths"))
        elif key == "ingress_config":
            _set(out, ["ray", "ingress_options"], value)
            conv.mapped.append((kit_key, "ray.ingress_options"))
        else:
            conv.dropped.append((kit_key, _DROPPED_SERVER[key]))

    if "base_ingress_config" in values:
        _set(out, ["ray", "deployment_defaults"], values["base_ingress_config"])
        conv.mapped.append(("base_ingress_config", "ray.deployment_defaults"))

    if "load_plugins" in values:
        out["load_plugins"] = list(values["load_plugins"])
        conv.mapped.append(("load_plugins", "load_plugins"))
    builtins: list[str] = []
    for name in values.get("load_builtin_plugins") or []:
        if _builtin_exists(name):
            builtins.append(name)
        else:
            conv.dropped.append((f"load_builtin_plugins: {name}", f"FrameX has no built-in plugin `{name}`."))
    if "load_builtin_plugins" in values:
        conv.mapped.append(("load_builtin_plugins", "load_builtin_plugins"))
    if server.get("enable_proxy") and "proxy" not in builtins:
        builtins.append("proxy")
    if builtins or "load_builtin_plugins" in values:
        out["load_builtin_plugins"] = builtins

    for name, section in (values.get("plugins") or {}).items():
        if name == "proxy" and isinstance(section, dict):
            _set(out, ["plugins", "proxy"], _convert_proxy(section, conv))
        else:
            _set(out, ["plugins", name], section)
            conv.mapped.append((f"plugins.{name}", f"plugins.{name}"))

    auth = values.get("auth") or {}
    for key, value in auth.items():
        if key == "rules":
            _set(out, ["auth", "rules"], value)
            conv.mapped.append(("auth.rules", "auth.rules"))
        elif key == "oauth":
            conv.dropped.append(("auth.oauth", "OAuth login has no equivalent; FrameX protects paths with API keys."))
        else:
            raise _unknown(config, f"auth.{key}", frozenset({"rules", "oauth"}))

    for key, value in (values.get("cache") or {}).items():
        if key not in _CACHE_KEYS:
            raise _unknown(config, f"cache.{key}", _CACHE_KEYS)
        _set(out, ["cache", key], value)
        conv.mapped.append((f"cache.{key}", f"cache.{key}"))

    for section, reason in _DROPPED_SECTIONS.items():
        if section in values:
            conv.dropped.append((f"{section}.*", reason))
    return conv


def _convert_proxy(section: dict[str, Any], conv: Conversion) -> dict[str, Any]:
    proxy: dict[str, Any] = {}
    upstreams: dict[str, dict[str, Any]] = {}
    urls = section.get("proxy_urls") or []
    if isinstance(urls, dict):
        for url, rules in urls.items():
            rules = dict(rules or {})
            upstream: dict[str, Any] = {"enable": rules.pop("enable", ["*"]), "disable": rules.pop("disable", [])}
            if "docs_path" in rules:
                upstream["openapi_path"] = rules.pop("docs_path")
            if rules:
                raise ConfigError(
                    f"`plugins.proxy.proxy_urls.{url}` has unknown key(s) {', '.join(sorted(rules))}; "
                    "accepted: enable, disable, docs_path."
                )
            upstreams[url] = upstream
    else:
        # The kit's list form mirrors no routes: only its proxy functions use the URLs.
        for url in urls:
            upstreams[url] = {"enable": [], "disable": []}
    if "proxy_urls" in section:
        conv.mapped.append(("plugins.proxy.proxy_urls", "plugins.proxy.upstreams (docs_path -> openapi_path)"))
    for key, value in section.items():
        if key == "proxy_urls":
            continue
        if key == "auth":
            rules = (value or {}).get("rules") or {}
            if rules:
                # The kit sends the first key of the matching rule to every upstream.
                first = {rule: keys[0] for rule, keys in rules.items() if keys}
                for upstream in upstreams.values():
                    upstream["auth"] = dict(first)
                conv.mapped.append(("plugins.proxy.auth.rules", "plugins.proxy.upstreams.<url>.auth (first key)"))
            if (value or {}).get("oauth"):
                conv.dropped.append(("plugins.proxy.auth.oauth", "OAuth has no equivalent."))
        elif key == "ingress_config":
            conv.dropped.append(
                (
                    "plugins.proxy.ingress_config",
                    "FrameX's proxy has no Serve deployment of its own; its routes run in the ingress "
                    "(`ray.ingress_options`).",
                )
            )
        else:
            proxy[key] = value
            conv.mapped.append((f"plugins.proxy.{key}", f"plugins.proxy.{key}"))
    if upstreams:
        proxy["upstreams"] = upstreams
    return proxy


def describe(conv: Conversion) -> str:
    """What was mapped and what has no equivalent, one line each."""
    lines = ["Mapped:"] + [f"  - {kit} -> {ours}" for kit, ours in conv.mapped]
    if not conv.mapped:
        lines = ["Mapped: nothing"]
    if conv.dropped:
        lines.append("No equivalent (ignored):")
        lines += [f"  - {kit}: {why}" for kit, why in conv.dropped]
    return "\n".join(lines)


def kit_document(
    path: Path | None, environ: Mapping[str, str], directory: Path | None = None
) -> tuple[dict[str, Any], str] | None:
    """The FrameX settings document of a kit configuration, for the configuration loader.

    ``path`` is the file named explicitly (used when it is TOML or a ``.env`` file); with
    no path, a kit configuration in ``directory`` (default: the working directory) is
    used. Logs one warning listing what was mapped and what has no equivalent. Returns
    None when there is no kit configuration to use.
    """
    if path is not None:
        if path.suffix != ".toml" and not path.name.startswith(".env"):
            return None
        config = kit_config_from_file(path, environ)
    else:
        found = find_kit_config(directory or Path.cwd(), environ)
        if found is None:
            return None
        config = found
    conv = convert(config)
    logger.warning(
        "Using the FrameX-kit configuration in %s (no FrameX YAML configuration was found).\n%s\n"
        "Convert it once with `framex migrate-config`, which writes config/local.yaml.",
        config.where,
        describe(conv),
    )
    return conv.settings, f"the FrameX-kit configuration in {config.where}"


def migrate(
    directory: Path, environ: Mapping[str, str], force: bool = False, include_environment: bool = False
) -> tuple[list[Path], Conversion, KitConfig]:
    """Write ``config/local.yaml`` (and ``config/ray.yaml`` when the kit used Ray) from the
    kit configuration in ``directory``. Returns the files written, the conversion and the source."""
    config = find_kit_config(directory, environ if include_environment else {})
    if config is None:
        raise ConfigError(
            f"No FrameX-kit configuration in `{directory}`: none of {TOML_FILE}, {PYPROJECT_FILE} "
            f"[tool.framex], {', '.join(ENV_FILES)} was found. Run `framex migrate-config` in the kit project's folder."
        )
    conv = convert(config)
    targets = [directory / "config" / "local.yaml"]
    if conv.use_ray:
        targets.append(directory / "config" / "ray.yaml")
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise ConfigError(
            f"`{existing[0]}` exists already; `framex migrate-config` does not overwrite it. "
            "Move it away or pass `--force`."
        )
    header = (
        f"# Converted from the FrameX-kit configuration in {', '.join(config.sources)} by `framex migrate-config`.\n"
    )
    for target in targets:
        document = dict(conv.settings)
        document["adapter"] = "ray" if target.name == "ray.yaml" else "local"
        document = {"adapter": document.pop("adapter"), **document}
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return targets, conv, config


def migrate_command(directory: str, force: bool = False, include_environment: bool = False) -> int:
    """``framex migrate-config``: write the files, print what was mapped and dropped; the exit code."""
    try:
        written, conv, config = migrate(Path(directory), os.environ, force, include_environment)
    except ConfigError as exc:
        print(f"framex: error: {exc}", file=sys.stderr)
        return 2
    print(f"Converted the FrameX-kit configuration in {config.where}.")
    print(describe(conv))
    for path in written:
        print(f"Wrote {path}")
    if conv.use_ray:
        print("The kit ran on Ray: start with `FRAMEX_CONFIG=config/ray.yaml framex run` (config/local.yaml is local).")
    print("Check it with `framex check`; the kit's files are no longer read once config/local.yaml exists.")
    return 0


def has_kit_config(directory: Path) -> bool:
    """Whether ``directory`` holds a kit configuration file (the environment is not looked at)."""
    return find_kit_config(directory, {}) is not None


__all__ = [
    "Conversion",
    "KitConfig",
    "convert",
    "describe",
    "find_kit_config",
    "has_kit_config",
    "kit_config_from_file",
    "kit_document",
    "migrate",
    "migrate_command",
    "read_env_file",
    "read_environment",
    "read_kit_file",
]
