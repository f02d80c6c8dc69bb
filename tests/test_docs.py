"""Every ```python block in README.md and docs/*.md runs.

Blocks of a page run in order in one namespace (top-level `await` allowed), with a
fresh container active. A block right after `<!-- file: NAME -->` is written to NAME in
a scratch folder on `sys.path` instead (a plugin module, a test file...); test files
written that way are then run with pytest.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from framex.container import close_container, create_container, use_container

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- file: (?P<file>[\w./-]+) -->\s*\n)?```(?P<lang>[\w-]*)[^\n]*\n(?P<code>.*?)```", re.S)


def blocks(page: Path) -> list[tuple[str | None, str]]:
    return [(m["file"], m["code"]) for m in BLOCK.finditer(page.read_text()) if m["lang"] == "python"]


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=lambda p: p.name)
async def test_page_examples_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_default: None
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    container = create_container(ROOT / "config" / "local.yaml")
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    tests: list[Path] = []
    try:
        with use_container(container):
            for index, (file, code) in enumerate(blocks(page)):
                if file is not None:
                    target = tmp_path / file
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(code)
                    if target.name.startswith("test_"):
                        tests.append(target)
                    continue
                compiled = compile(code, f"{page.name}[{index}]", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
                result = eval(compiled, namespace)
                if result is not None:
                    await result
    finally:
        close_container(container)
        for name in set(sys.modules) - before:  # modules written for this page only
            module_file = getattr(sys.modules[name], "__file__", None) or ""
            if module_file.startswith(str(tmp_path)):
                del sys.modules[name]
    for test in tests:
        run_pytest(test, tmp_path)


def run_pytest(test: Path, folder: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEX")}
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(ROOT)])
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    setup = [c for c in commands if c.startswith("python3 -m venv .venv")]
    assert len(setup) == 2, setup
    run, test = setup
    assert run.endswith("framex run") and "pytest" in test
    assert test in (ROOT / ".ci" / "run").read_text().splitlines()
