"""The ``framex`` command: ``run`` serves, ``check`` validates and lists what would be served."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from framex.consts import VERSION
from framex.errors import FrameXError, PluginStartError

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="framex", description="Serve FrameX plugins as one FastAPI service.")
    parser.add_argument("--version", action="version", version=f"framex {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--config", metavar="PATH", help="YAML file (default: $FRAMEX_CONFIG, else config/local.yaml)")
        sub.add_argument("--adapter", choices=["local", "ray"], help="execution backend")
        sub.add_argument(
            "--load-plugins", action="append", metavar="MODULE", help="plugin module or package (repeatable)"
        )
        sub.add_argument(
            "--load-builtin-plugins", action="append", metavar="NAME", help="built-in plugin name (repeatable)"
        )

    run = commands.add_parser("run", help="serve the plugins")
    common(run)
    run.add_argument("--host", help="address to bind (default from server.host)")
    run.add_argument("--port", type=int, help="port to bind (default from server.port)")
    _run_process_flags(run)
    kit_flags(run)

    check = commands.add_parser("check", help="validate config and plugins; print routes and function APIs")
    common(check)

    migrate = commands.add_parser(
        "migrate-config", help="convert a FrameX-kit project's configuration to config/local.yaml"
    )
    migrate.add_argument("--dir", default=".", metavar="PATH", help="the kit project's folder (default: here)")
    migrate.add_argument("--force", action="store_true", help="overwrite existing config/local.yaml, config/ray.yaml")
    migrate.add_argument(
        "--include-env", action="store_true", help="also convert unprefixed environment variables (SERVER__PORT ...)"
    )
    return parser


def _run_process_flags(run: argparse.ArgumentParser) -> None:
    """``--workers`` and ``--reload``: how many processes serve (see docs/deployment.md)."""
    run.add_argument(
        "--workers", type=int, metavar="N", help="worker processes on one port, local backend (server.workers)"
    )
    run.add_argument(
        "--reload", action="store_true", help="restart when a plugin module or the config changes (development)"
    )


def kit_flags(sub: argparse.ArgumentParser) -> None:
    """FrameX-kit's `run` flags, accepted with a warning naming FrameX's (docs/migrating.md)."""
    kit = sub.add_argument_group("FrameX-kit flags (deprecated)")
    kit.add_argument("--use-ray", action=argparse.BooleanOptionalAction, default=None, help="use --adapter ray|local")
    kit.add_argument("--enable-proxy", action=argparse.BooleanOptionalAction, default=None, help="load `proxy`")
    kit.add_argument("--num-cpus", type=int, help="ray.num_cpus")
    kit.add_argument("--dashboard-host", help="ray.dashboard: true")
    kit.add_argument("--dashboard-port", type=int, help="ray.dashboard: true")


def _kit_overrides(args: argparse.Namespace) -> dict[str, Any]:
    given = {name: getattr(args, name, None) for name in ("use_ray", "enable_proxy", "num_cpus")}
    given["dashboard"] = getattr(args, "dashboard_host", None) or getattr(args, "dashboard_port", None)
    if all(value is None for value in given.values()):
        return {}
    print(
        "framex: warning: --use-ray, --enable-proxy, --num-cpus and --dashboard-* are FrameX-kit's flags; "
        "use --adapter ray|local, `load_builtin_plugins: [proxy]`, `ray.num_cpus`, `ray.dashboard` "
        "(docs/migrating.md).",
        file=sys.stderr,
    )
    overrides: dict[str, Any] = {}
    if given["use_ray"] is not None:
        overrides["adapter"] = "ray" if given["use_ray"] else "local"
    if given["num_cpus"] is not None and given["num_cpus"] > 0:
        overrides["ray__num_cpus"] = given["num_cpus"]
    if given["dashboard"]:
        overrides["ray__dashboard"] = True
    if given["enable_proxy"]:
        builtins = list(args.load_builtin_plugins or []) or _configured_builtins(args.config)
        overrides["load_builtin_plugins"] = [*builtins, "proxy"] if "proxy" not in builtins else builtins
    return overrides


def _configured_builtins(config: str | None) -> list[str]:
    import logging

    from framex.config import load_settings

    # Read once more only for this list: the warning about a kit configuration is logged
    # when the container is built.
    config_logger = logging.getLogger("framex.config")
    disabled, config_logger.disabled = config_logger.disabled, True
    try:
        return list(load_settings(config).load_builtin_plugins)
    finally:
        config_logger.disabled = disabled


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    ours = {
        "adapter": args.adapter,
        "server__host": getattr(args, "host", None),
        "server__port": getattr(args, "port", None),
        "server__workers": getattr(args, "workers", None),
        "load_plugins": args.load_plugins,
        "load_builtin_plugins": args.load_builtin_plugins,
    }
    return {key: value for key, value in ours.items() if value is not None} | _kit_overrides(args)


def _check(container: Any) -> None:
    runtime = container.runtime()
    runtime.freeze()  # loads and instantiates what the settings list, as serving does
    registry = runtime.registry
    container.app()  # compiles the routes, as serving does
    compiled = container.compiled_routes()
    for plugin in registry.plugins.values():
        meta = plugin.metadata
        print(f"plugin {plugin.name} {meta.version} ({plugin.module.__name__})")
        for api in plugin.apis:
            if api.is_http:
                line = f"  {','.join(api.spec.methods):<7} {api.path}"
                why = next(
                    (
                        compiled.fallbacks[f"{m} {api.path}"]
                        for m in api.spec.methods
                        if f"{m} {api.path}" in compiled.fallbacks
                    ),
                    None,
                )
                print(f"{line}  [FastAPI's path: {why}]" if why else line)
            if api.is_func:
                print(f"  {'FUNC':<7} {api.name}")
    routes = (
        ""
        if not compiled.enabled
        else f", {compiled.count} route(s) compiled, {len(compiled.fallbacks)} on FastAPI's path"
    )
    adapter = container.settings().adapter
    print(f"ok: {len(registry.plugins)} plugin(s), {len(registry.apis)} API(s), adapter {adapter}{routes}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``framex`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "migrate-config":
        from framex.kit_migrate import migrate_command

        return migrate_command(args.dir, force=args.force, include_environment=args.include_env)
    # Plugins are named by module path relative to the project, as with `python -m`.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    from framex.container import create_container
    from framex.context import use_container

    try:
        container = create_container(args.config, **_overrides(args))
        use_container(container)
        if args.command == "check":
            _check(container)
        elif args.reload:
            from framex.reload import serve_with_reload

            serve_with_reload(args.config, _overrides(args))
        else:
            from framex.serve import serve

            serve(container)
    except PluginStartError as exc:
        print(f"framex: error: {exc}", file=sys.stderr)
        return 1
    except FrameXError as exc:
        print(f"framex: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
