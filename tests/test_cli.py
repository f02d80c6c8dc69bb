from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from framex.cli import main
from tests.server import ROOT

FP = "tests.fixture_plugins"


def framex(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "framex.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_check_lists_routes_and_function_apis(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(ROOT / "config" / "local.yaml")]) == 0
    out = capsys.readouterr().out
    assert "plugin demo 1.0.0 (plugins.demo)" in out
    assert "GET     /api/v1/demo/run" in out
    assert "POST    /api/v1/demo/total" in out
    assert "FUNC    echo.EchoPlugin.confess" in out
    assert out.rstrip().endswith("ok: 3 plugin(s), 13 API(s), adapter local, 12 route(s) compiled, 0 on FastAPI's path")


def test_check_names_routes_left_to_fastapis_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--load-plugins", f"{FP}.depends_route"]) == 0
    out = capsys.readouterr().out
    assert "GET     /api/v1/depends/items  [FastAPI's path: it uses Depends()]" in out
    assert "GET     /api/v1/depends/plain\n" in out
    assert out.rstrip().endswith("4 route(s) compiled, 1 on FastAPI's path")


def test_check_flags_override_config(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["check", "--load-plugins", f"{FP}.collection.alpha", "--load-plugins", f"{FP}.collection.beta"]
    assert main([*args, "--load-builtin-plugins", "echo", "--adapter", "ray"]) == 0
    out = capsys.readouterr().out
    assert "plugin alpha" in out and "plugin beta" in out and "plugin demo" not in out
    assert "adapter ray" in out


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "Configuration file `{path}` does not exist"),
        ("server: [1,\n", "`{path}` is not valid YAML at line 2"),
        ("sever: {port: 1}\n", "`sever`: unknown key. Accepted keys here: adapter"),
        ("server: {port: high}\n", "`server.port`: Input should be a valid integer"),
    ],
)
def test_bad_config_exits_2_with_one_clear_message(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "framex.yaml"
    if content is not None:
        path.write_text(content)
    result = framex("check", "--config", str(path))
    assert result.returncode == 2
    assert expected.format(path=path) in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("framex: error: ")


def test_broken_plugin_stops_startup_naming_it() -> None:
    result = framex("run", "--port", "0", "--load-plugins", f"{FP}.broken_import")
    assert result.returncode == 2
    assert f"Plugin `{FP}.broken_import` failed to import: RuntimeError: broken on purpose" in result.stderr
    assert "Traceback" not in result.stderr


def test_failing_on_start_stops_startup_naming_it() -> None:
    result = framex("run", "--port", "0", "--load-plugins", f"{FP}.failing_start")
    assert result.returncode == 1
    assert result.stderr.rstrip().endswith(
        "framex: error: Plugin `failing_start`: `FailingPlugin.on_start()` failed: "
        "ConnectionError: cannot reach the model store."
    )


def test_unknown_command_is_a_usage_error() -> None:
    result = framex("serve")
    assert result.returncode == 2
    assert "invalid choice: 'serve'" in result.stderr
