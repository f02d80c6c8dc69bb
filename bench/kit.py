"""The FrameX-kit peer: its own virtualenv, created by the benchmark, and how to run its apps.

``ensure_kit()`` creates ``bench/.venvs/framex-kit`` (git-ignored) with ``python -m venv`` and
installs ``framex-kit==0.4.2`` from PyPI, plus the ``uvloop`` and ``httptools`` versions this
checkout's virtualenv has, so uvicorn runs the same server stack for every app, and PyYAML,
which framex-kit imports without requiring it. The plugins
are in ``bench/apps/kit``; that directory, not the repository root, goes on ``sys.path``
there, since both projects' packages are called ``framex``.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

from bench.common import ROOT

KIT_VERSION = "0.4.2"
KIT_VENV = ROOT / "bench" / ".venvs" / "framex-kit"
KIT_APPS = ROOT / "bench" / "apps" / "kit"
SERVER_EXTRAS = ("uvloop", "httptools")
UNDECLARED = ("PyYAML",)
"""Imported by framex-kit 0.4.2 (``framex.utils.config_docs``) but missing from its requirements."""


def kit_python() -> Path:
    return KIT_VENV / "bin" / "python"


def _installed(python: Path, name: str) -> str | None:
    """The version of ``name`` in the virtualenv of ``python`` (None: not installed)."""
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def wanted() -> list[str]:
    """The requirements: framex-kit, and our server extras at our versions."""
    pins = [f"framex-kit=={KIT_VERSION}"]
    for name in (*SERVER_EXTRAS, *UNDECLARED):
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins


def ensure_kit() -> tuple[Path | None, str]:
    """The kit's Python once it is installed, and what happened (or why there is no kit peer)."""
    python = kit_python()
    pins = wanted()
    if python.exists() and all(_installed(python, p.split("==")[0]) == p.split("==")[1] for p in pins):
        return python, f"reused {KIT_VENV.relative_to(ROOT)}"
    print(f"creating {KIT_VENV.relative_to(ROOT)}: pip install {' '.join(pins)} ...", file=sys.stderr, flush=True)
    steps = [
        [sys.executable, "-m", "venv", str(KIT_VENV)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pins],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            return None, f"FrameX-kit not measured: `{' '.join(step[-3:])}` failed: {done.stderr.strip()[-300:]}"
    return python, f"created {KIT_VENV.relative_to(ROOT)} ({', '.join(pins)})"


def kit_versions(python: Path) -> dict[str, str]:
    """The versions in the kit's virtualenv that matter for the comparison."""
    names = ("framex-kit", "fastapi", "starlette", "uvicorn", "pydantic", *SERVER_EXTRAS)
    return {name: version for name in names if (version := _installed(python, name))}
