"""Plugins named by filesystem path (``framex.load_plugins("/srv/app/plugins")``), as FrameX-kit allows."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from framex.errors import PluginLoadError


def is_path(name: str) -> bool:
    """Whether a ``load_plugins`` entry is a filesystem path rather than a dotted module name."""
    return "/" in name or os.sep in name or name.endswith(".py") or name.startswith(".")


def module_name_for(name: str) -> str:
    """The dotted module name of a plugin folder or ``.py`` file, making it importable.

    The name is relative to the first ``sys.path`` entry (or the working directory)
    that contains the path, as the kit names it relative to the working directory;
    a path outside all of them gets its parent folder added to ``sys.path``.
    """
    path = Path(name).expanduser()
    if not path.exists():
        raise PluginLoadError(
            f"Plugin path `{name}` does not exist. Pass an existing plugin folder or `.py` file, "
            "or a dotted module name such as `plugins.greeter`."
        )
    path = path.resolve()
    if path.is_file() and path.suffix != ".py":
        raise PluginLoadError(f"Plugin path `{name}` is not a `.py` file or a folder.")
    target = path.with_suffix("") if path.is_file() else path
    if target.name == "__init__":
        target = target.parent
    roots = [Path.cwd().resolve(), *(Path(p or ".").resolve() for p in sys.path)]
    for root in roots:
        if target != root and target.is_relative_to(root):
            parts = target.relative_to(root).parts
            if all(part.isidentifier() for part in parts):
                if str(root) not in {str(Path(p or ".").resolve()) for p in sys.path}:
                    sys.path.insert(0, str(root))
                return ".".join(parts)
    if not target.name.isidentifier():
        raise PluginLoadError(
            f"Plugin path `{name}`: `{target.name}` is not a valid Python module name. Rename it "
            "(letters, digits and `_`)."
        )
    sys.path.insert(0, str(target.parent))
    return target.name
