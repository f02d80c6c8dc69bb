"""Converting a FrameX-kit configuration to FrameX settings, and ``framex migrate-config``.

:func:`convert` maps every key that has a FrameX equivalent and lists the ones that do
not, with the reason; ``framex run`` uses the result when a project has no FrameX
configuration, ``framex migrate-config`` writes it out as YAML. Imports nothing of
FrameX but its errors and :mod:`framex.kit_config`, so the configuration loader can call it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from framex.errors import ConfigError
from framex.kit_config import (
    CACHE_KEYS,
    DROPPED_SECTIONS,
    DROPPED_SERVER,
    ENV_FILES,
    PYPROJECT_FILE,
    SERVER_KEYS,
    TOML_FILE,
    TOP_KEYS,
    Conversion,
    KitConfig,
    find_kit_config,
    kit_config_from_file,
    set_path,
)

logger = logging.getLogger("framex.config")


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
        if key not in TOP_KEYS:
            raise _unknown(config, key, TOP_KEYS)

    server = values.get("server") or {}
    for key, value in server.items():
        kit_key = f"server.{key}"
        if key not in SERVER_KEYS:
            raise _unknown(config, kit_key, SERVER_KEYS)
        if key in ("host", "port"):
            set_path(out, ["server", key], value)
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
            set_path(out, ["ray", "dashboard"], True)
            conv.mapped.append((kit_key, "ray.dashboard: true (Ray's own dashboard address)"))
        elif key == "num_cpus":
            if isinstance(value, int) and value > 0:
                set_path(out, ["ray", "num_cpus"], value)
                conv.mapped.append((kit_key, "ray.num_cpus"))
            else:
                conv.mapped.append((kit_key, "ray.num_cpus: null (all CPUs)"))
        elif key == "excluded_log_paths":
            set_path(out, ["log", "exclude_paths"], value)
            conv.mapped.append((kit_key, "log.exclude_paths"))
        elif key == "ingress_config":
            set_path(out, ["ray", "ingress_options"], value)
            conv.mapped.append((kit_key, "ray.ingress_options"))
        else:
            conv.dropped.append((kit_key, DROPPED_SERVER[key]))

    if "base_ingress_config" in values:
        set_path(out, ["ray", "deployment_defaults"], values["base_ingress_config"])
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
            set_path(out, ["plugins", "proxy"], _convert_proxy(section, conv))
        else:
            set_path(out, ["plugins", name], section)
            conv.mapped.append((f"plugins.{name}", f"plugins.{name}"))

    auth = values.get("auth") or {}
    for key, value in auth.items():
        if key == "rules":
            set_path(out, ["auth", "rules"], value)
            conv.mapped.append(("auth.rules", "auth.rules"))
        elif key == "oauth":
            conv.dropped.append(("auth.oauth", "OAuth login has no equivalent; FrameX protects paths with API keys."))
        else:
            raise _unknown(config, f"auth.{key}", frozenset({"rules", "oauth"}))

    for key, value in (values.get("cache") or {}).items():
        if key not in CACHE_KEYS:
            raise _unknown(config, f"cache.{key}", CACHE_KEYS)
        set_path(out, ["cache", key], value)
        conv.mapped.append((f"cache.{key}", f"cache.{key}"))

    for section, reason in DROPPED_SECTIONS.items():
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


__all__ = ["convert", "describe", "kit_document", "migrate", "migrate_command"]
