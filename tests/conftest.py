from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def framex_config_path() -> Path:
    """Every test container starts from tests/config.yaml unless a test says otherwise."""
    return ROOT / "tests" / "config.yaml"


@pytest.fixture(autouse=True)
def _no_framex_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's FRAMEX__* or FRAMEX_CONFIG variables must not change test results.
    import os

    for name in list(os.environ):
        if name.startswith("FRAMEX"):
            monkeypatch.delenv(name)
