"""Plugins named by filesystem path (``framex.load_plugins("/srv/app/plugins")``), as FrameX-kit allows."""

from __future__ import annotations

import importlib.machinery
import importlib.util
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
                _claim_folders(name, root, parts)
                return ".".join(parts)
    if not target.name.isidentifier():
        raise PluginLoadError(
            f"Plugin path `{name}`: `{target.name}` is not a valid Python module name. Rename it "
            "(letters, digits and `_`)."
        )
    sys.path.insert(0, str(target.parent))
    _claim_folders(name, target.parent, (target.name,))
    return target.name


def _claim_folders(given: str, root: Path, parts: tuple[str, ...]) -> None:
    """Bind the folders on the way to the plugin (those without ``__init__.py``) to their names.

    Python prefers a regular package of the same name anywhere on ``sys.path`` over a
    folder without ``__init__.py``; the folder named here must win.
    """
    for depth in range(1, len(parts) + 1):
        folder = root.joinpath(*parts[:depth])
        if not folder.is_dir() or (folder / "__init__.py").exists():
            continue
        dotted = ".".join(parts[:depth])
        existing = sys.modules.get(dotted)
        if existing is not None:
            if str(folder) in list(getattr(existing, "__path__", [])):
                continue
            where = getattr(existing, "__file__", None) or list(getattr(existing, "__path__", []))
            raise PluginLoadError(
                f"Plugin path `{given}`: its module name `{dotted}` is already taken by `{where}`. "
                "Rename the folder, or load the plugins by their dotted module name."
            )
        spec = importlib.machinery.ModuleSpec(dotted, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
        module = importlib.util.module_from_spec(spec)
        sys.modules[dotted] = module
        if depth > 1:
            setattr(sys.modules[".".join(parts[: depth - 1])], parts[depth - 1], module)
