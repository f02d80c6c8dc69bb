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

    check = commands.add_parser("check", help="validate config and plugins; print routes and function APIs")
    common(check)
    return parser


def _run_process_flags(run: argparse.ArgumentParser) -> None:
    """``--workers`` and ``--reload``: how many processes serve (see docs/deployment.md)."""
    run.add_argument(
        "--workers", type=int, metavar="N", help="worker processes on one port, local backend (server.workers)"
    )
    run.add_argument(
        "--reload", action="store_true", help="restart when a plugin module or the config changes (development)"
    )


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "adapter": args.adapter,
        "server__host": getattr(args, "host", None),
        "server__port": getattr(args, "port", None),
        "server__workers": getattr(args, "workers", None),
        "load_plugins": args.load_plugins,
        "load_builtin_plugins": args.load_builtin_plugins,
    }


def _check(container: Any) -> None:
    runtime = container.runtime()
    runtime.freeze()  # loads and instantiates what the settings list, as serving does
    registry = runtime.registry
    for plugin in registry.plugins.values():
        meta = plugin.metadata
        print(f"plugin {plugin.name} {meta.version} ({plugin.module.__name__})")
        for api in plugin.apis:
            if api.is_http:
                print(f"  {','.join(api.spec.methods):<7} {api.path}")
            if api.is_func:
                print(f"  {'FUNC':<7} {api.name}")
    print(f"ok: {len(registry.plugins)} plugin(s), {len(registry.apis)} API(s), adapter {container.settings().adapter}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``framex`` console script."""
    args = _parser().parse_args(argv)
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
