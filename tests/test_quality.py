"""The code base stays clean: ruff and mypy pass, no import cycles, no module over 500 lines."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 500


@pytest.mark.parametrize(
    "command",
    [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]],
    ids=lambda c: " ".join(c),
)
def test_tool_is_clean(command: list[str]) -> None:
    run = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr


# -- the import graph ------------------------------------------------------------------


def modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``package`` (a directory)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, in functions too, but not under ``if TYPE_CHECKING:`` (never run)."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
        return
    run = node.orelse if isinstance(node, ast.If) and _is_type_checking(node.test) else ast.iter_child_nodes(node)
    for child in run:
        yield from _imports(child)


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports.

    ``from a.b import c`` counts as importing ``a.b.c`` when that is a module, else ``a.b``;
    relative imports are resolved. The parent packages a submodule import also runs are
    not counted: every ``from framex.x import y`` would otherwise close a loop through
    ``framex/__init__.py``.
    """
    known = modules(package)
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            base = node.module or ""
            if node.level:
                anchor = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                base = f"{anchor}.{base}" if base else anchor
            submodules = {f"{base}.{alias.name}" for alias in node.names} & known.keys()
            targets.update(submodules or {base})
        graph[name] = {t for t in targets if t in known and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle (``[a, b, ..., a]``) per group of modules that import each other."""
    return sorted(_shortest_cycle(graph, group) for group in _strongly_connected(graph) if len(group) > 1)


def _shortest_cycle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """Breadth-first inside ``group``, from its first module back to itself."""
    start = min(group)
    paths: deque[list[str]] = deque([[start]])
    seen = {start}
    while paths:
        path = paths.popleft()
        following = sorted(graph[path[-1]] & group)
        if start in following:
            return [*path, start]
        for module in following:
            if module not in seen:
                seen.add(module)
                paths.append([*path, module])
    raise AssertionError(f"{sorted(group)} is no strongly connected group")


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (the recursion limit is not a test's concern)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                groups.append(group)
    return groups


def cycle_report(graph: dict[str, set[str]]) -> str:
    """One line per group of modules that import each other: its size, members and one cycle."""
    lines = []
    for group in sorted((g for g in _strongly_connected(graph) if len(g) > 1), key=min):
        cycle = _shortest_cycle(graph, group)
        lines.append(f"{len(group)} modules import each other ({', '.join(sorted(group))}); e.g. {' -> '.join(cycle)}")
    return "\n".join(lines)


def oversized(package: Path, limit: int = MAX_LINES) -> list[str]:
    """``path: N lines`` for every module of ``package`` longer than ``limit`` lines."""
    found = []
    for path in modules(package).values():
        count = len(path.read_text().splitlines())
        if count > limit:
            found.append(f"{path.relative_to(package.parent)}: {count} lines (at most {limit})")
    return found


def test_no_import_cycles_among_framex_modules() -> None:
    report = cycle_report(import_graph(ROOT / "framex"))
    assert not report, "import cycles (imports inside functions count):\n" + report


def test_no_framex_module_is_over_500_lines() -> None:
    found = oversized(ROOT / "framex")
    assert not found, "split these modules:\n" + "\n".join(found)


# -- the checks on known inputs ----------------------------------------------------------


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_walker_finds_a_cycle_through_every_import_form(tmp_path: Path) -> None:
    package = write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "def f():\n    from pkg import b\n",  # inside a function; `b` is a module
            "pkg/b.py": "from .sub import c\n",  # relative, `c` a module of a subpackage
            "pkg/sub/__init__.py": "",
            "pkg/sub/c.py": "import os\nfrom .. import d as renamed\n",  # two levels up
            "pkg/d.py": "import pkg.a\n",  # closes a -> b -> c -> d -> a
            "pkg/e.py": "import typing\nif typing.TYPE_CHECKING:\n    from pkg import a\nelse:\n    import pkg.f\n",
            "pkg/f.py": "from pkg.e import thing\n",  # `thing` is no module: an import of `pkg.e`
        },
    )
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.sub.c"}
    assert graph["pkg.sub.c"] == {"pkg.d"}
    assert graph["pkg.e"] == {"pkg.f"}  # the TYPE_CHECKING import of `pkg.a` is left out
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c", "pkg.d", "pkg.a"], ["pkg.e", "pkg.f", "pkg.e"]]
    report = cycle_report(graph)
    assert "4 modules import each other (pkg.a, pkg.b, pkg.d, pkg.sub.c); e.g. pkg.a -> pkg.b" in report
    assert "2 modules import each other (pkg.e, pkg.f); e.g. pkg.e -> pkg.f -> pkg.e" in report


def test_walker_passes_a_package_without_cycles(tmp_path: Path) -> None:
    package = write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import run\n",  # a package importing its own modules is no cycle
            "pkg/a.py": "from pkg import b\ndef run():\n    from . import c\n",
            "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import run\n",
            "pkg/c.py": "import pkg.b\n",
        },
    )
    graph = import_graph(package)
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b", "pkg.c"}, "pkg.b": set(), "pkg.c": {"pkg.b"}}
    assert cycles(graph) == [] and cycle_report(graph) == ""


def test_line_limit_names_the_file_and_its_length(tmp_path: Path) -> None:
    package = write(tmp_path, {"pkg/__init__.py": "", "pkg/long.py": "x = 1\n" * 501, "pkg/ok.py": "x = 1\n" * 500})
    assert oversized(package) == [f"{Path('pkg', 'long.py')}: 501 lines (at most 500)"]
