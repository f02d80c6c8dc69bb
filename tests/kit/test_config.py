"""A FrameX-kit project's configuration: honoured when there is no FrameX YAML, converted by
`framex migrate-config`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from framex.cli import main
from framex.config import load_settings
from framex.container import get_container, use_container
from framex.errors import ConfigError
from framex.kit_config import find_kit_config
from framex.kit_migrate import convert
from tests.server import ROOT, _served

KIT_TOML = """
load_builtin_plugins = ["echo", "proxy"]
load_plugins = ["kitproj_plugins"]
base_ingress_config = { max_ongoing_requests = 10 }

[server]
host = "127.0.0.1"
port = 9100
use_ray = true
enable_proxy = true
num_cpus = 4
dashboard_port = 8260
ingress_config = { max_ongoing_requests = 120 }
excluded_log_paths = ["/ping"]
legal_proxy_code = [200]

[plugins.foo]
debug = true

[plugins.proxy]
force_stream_apis = ["/api/v1/chat/stream"]
timeout = 600
ingress_config = { max_ongoing_requests = 60 }
proxy_functions = { "http://127.0.0.1:9000" = ["your_module.build_report"] }

[plugins.proxy.proxy_urls."http://127.0.0.1:9000"]
enable = ["/api/v1/*"]
disable = ["/api/v1/internal/*"]
docs_path = "/openapi.json"

[plugins.proxy.auth]
rules = { "/api/v1/proxy/remote" = ["proxy-key", "other"] }

[auth]
rules = { "/api/v1/echo" = ["k-1"] }

[auth.oauth]
provider = "gitlab"

[sentry]
enable = true

[docs]
embedded_config_file_whitelist = []

[cache]
enabled = true
ttl = 60
"""

EXPECTED = {
    "server": {"host": "127.0.0.1", "port": 9100},
    "adapter": "ray",
    "ray": {
        "num_cpus": 4,
        "dashboard": True,
        "ingress_options": {"max_ongoing_requests": 120},
        "deployment_defaults": {"max_ongoing_requests": 10},
    },
    "log": {"exclude_paths": ["/ping"]},
    "load_plugins": ["kitproj_plugins"],
    "load_builtin_plugins": ["echo", "proxy"],
    "plugins": {
        "foo": {"debug": True},
        "proxy": {
            "force_stream_apis": ["/api/v1/chat/stream"],
            "timeout": 600,
            "proxy_functions": {"http://127.0.0.1:9000": ["your_module.build_report"]},
            "upstreams": {
                "http://127.0.0.1:9000": {
                    "enable": ["/api/v1/*"],
                    "disable": ["/api/v1/internal/*"],
                    "openapi_path": "/openapi.json",
                    "auth": {"/api/v1/proxy/remote": "proxy-key"},
                }
            },
        },
    },
    "auth": {"rules": {"/api/v1/echo": ["k-1"]}},
    "cache": {"enabled": True, "ttl": 60},
}


@pytest.fixture(autouse=True)
def _keep_default_container() -> Iterator[None]:
    # `framex check` makes its container the process default; the next test must not see it.
    keeper = use_container(get_container())
    yield
    keeper.__exit__(None, None, None)


@pytest.fixture
def kit_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "config.toml").write_text(KIT_TOML)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_key_with_an_equivalent_is_mapped(kit_project: Path) -> None:
    config = find_kit_config(kit_project, {})
    assert config is not None
    conversion = convert(config)
    assert conversion.settings == EXPECTED and conversion.use_ray
    dropped = dict(conversion.dropped)
    assert set(dropped) == {
        "server.legal_proxy_code",
        "plugins.proxy.ingress_config",
        "auth.oauth",
        "sentry.*",
        "docs.*",
    }
    assert "Sentry" in dropped["sentry.*"] and "OAuth" in dropped["auth.oauth"]


def test_run_without_framex_config_uses_the_kit_config(
    kit_project: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    (kit_project / "kitproj_plugins").mkdir()
    (kit_project / "kitproj_plugins" / "__init__.py").write_text("")
    (kit_project / "kitproj_plugins" / "foo.py").write_text(
        "from framex.plugin import PluginMetadata, on_request\n"
        '__plugin_meta__ = PluginMetadata(name="foo")\n'
        '@on_request("/foo")\nasync def foo() -> str:\n    return "foo"\n'
    )
    monkeypatch_path = str(kit_project)
    sys.path.insert(0, monkeypatch_path)
    try:
        with caplog.at_level(logging.WARNING, logger="framex.config"):
            assert main(["check", "--adapter", "local"]) == 0
    finally:
        sys.path.remove(monkeypatch_path)
        sys.modules.pop("kitproj_plugins.foo", None)
        sys.modules.pop("kitproj_plugins", None)
    out = capsys.readouterr().out
    assert "GET     /api/v1/foo" in out and "plugin proxy" in out
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith("Using the FrameX-kit configuration in `config.toml`")
    assert "server.use_ray -> adapter: ray" in warning and "sentry.*: FrameX has no Sentry" in warning
    assert "framex migrate-config" in warning


def test_sources_and_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.framex]\nload_builtin_plugins = ["echo"]\n[tool.framex.server]\nport = 1\n'
        'host = "10.0.0.1"\n'
    )
    (tmp_path / "config.toml").write_text("[server]\nport = 2\n")
    (tmp_path / ".env").write_text("SERVER__PORT=3\nPLUGINS__FOO__DEBUG=true\nUNRELATED=1\n")
    (tmp_path / ".env.prod").write_text("export server__port='4'\n")
    settings = load_settings(None, environ={"LOAD_PLUGINS": "[]", "PATH": "/bin"})
    assert (settings.server.port, settings.server.host) == (4, "10.0.0.1")
    assert settings.plugins == {"foo": {"debug": True}} and settings.load_builtin_plugins == ["echo"]
    settings = load_settings(None, environ={"SERVER__PORT": "5", "FRAMEX__SERVER__PORT": "6"})
    assert settings.server.port == 6  # FRAMEX__ variables beat the kit's own
    assert load_settings(None, environ={"SERVER__PORT": "5"}).server.port == 5


def test_explicit_toml_file(kit_project: Path) -> None:
    settings = load_settings("config.toml", environ={})
    assert settings.adapter == "ray" and settings.server.port == 9100
    assert settings.plugins["proxy"]["upstreams"]["http://127.0.0.1:9000"]["openapi_path"] == "/openapi.json"


def test_framex_yaml_wins_over_the_kit_config(kit_project: Path) -> None:
    (kit_project / "config").mkdir()
    (kit_project / "config" / "local.yaml").write_text("server: {port: 7000}\n")
    assert load_settings(None, environ={"SERVER__PORT": "5"}).server.port == 7000


def test_a_key_the_kit_rejects_too_is_an_error(kit_project: Path) -> None:
    (kit_project / "config.toml").write_text("[server]\npotr = 8080\n")
    with pytest.raises(ConfigError, match=r"`server.potr` in `config.toml` is not a FrameX-kit setting either"):
        load_settings(None, environ={})


def test_migrate_config_writes_yaml_that_loads_the_same(
    kit_project: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from_kit = load_settings(None, environ={})
    assert main(["migrate-config"]) == 0
    out = capsys.readouterr().out
    assert "Wrote config/local.yaml" in out and "Wrote config/ray.yaml" in out
    assert "server.legal_proxy_code: FrameX's proxy passes" in out and "docs.*" in out
    local = yaml.safe_load((kit_project / "config" / "local.yaml").read_text())
    ray = yaml.safe_load((kit_project / "config" / "ray.yaml").read_text())
    assert local["adapter"] == "local" and ray["adapter"] == "ray"
    caplog.clear()
    assert load_settings("config/ray.yaml", environ={}) == from_kit
    assert load_settings(None, environ={}).adapter == "local"  # config/local.yaml is read now, the kit's files not
    assert not caplog.records
    assert main(["migrate-config"]) == 2
    assert "does not overwrite it. Move it away or pass `--force`" in capsys.readouterr().err
    assert main(["migrate-config", "--force"]) == 0


def test_migrate_config_without_a_kit_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate-config", "--dir", str(tmp_path)]) == 2
    assert "No FrameX-kit configuration in" in capsys.readouterr().err


def test_framex_run_serves_a_kit_project(tmp_path: Path) -> None:
    # A real `framex run` in a kit project: its config.toml loads echo and sets plugin
    # config; the kit's unprefixed SERVER__PORT sets the port.
    (tmp_path / "config.toml").write_text(
        'load_builtin_plugins = ["echo"]\n[server]\nhost = "127.0.0.1"\nport = 1\n[auth]\n'
        'rules = { "/api/v1/echo" = ["kit-key"] }\n'
    )
    script = (
        "import os, sys; os.environ['SERVER__PORT'] = '{port}'; from framex.cli import main; sys.exit(main(['run']))"
    )
    with _served([sys.executable, "-c", script], {"PYTHONPATH": str(ROOT)}, tmp_path, 60) as server:
        assert httpx.get(f"{server.url}/api/v1/echo", params={"message": "m"}).status_code == 401
        answer = httpx.get(f"{server.url}/api/v1/echo", params={"message": "m"}, headers={"Authorization": "kit-key"})
        assert answer.json()["data"] == "m"
        server.stop()
        assert "Using the FrameX-kit configuration in `config.toml`" in server.output()


def test_kit_run_flags_are_accepted_with_a_warning(
    kit_project: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    served: list[object] = []
    monkeypatch.setattr("framex.serve.serve", served.append)
    (kit_project / "config.toml").write_text('load_builtin_plugins = ["echo"]\n')
    with caplog.at_level(logging.WARNING, logger="framex.config"):
        assert main(["run", "--no-use-ray", "--enable-proxy", "--num-cpus", "2", "--dashboard-port", "8265"]) == 0
    assert len(caplog.records) == 1  # the kit configuration is announced once
    assert "FrameX-kit's flags; use --adapter ray|local" in capsys.readouterr().err
    settings = get_container().settings()
    assert settings.adapter == "local" and settings.load_builtin_plugins == ["echo", "proxy"]
    assert (settings.ray.num_cpus, settings.ray.dashboard) == (2, True)
    assert served == [get_container()]


def test_env_files_list_form_proxy_urls_and_unknown_builtins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        '# comment\nexport LOAD_BUILTIN_PLUGINS=\'["echo", "invoker"]\'\n'
        'PLUGINS__PROXY__PROXY_URLS=["http://127.0.0.1:9000"]\nSERVER__HOST="0.0.0.0"\nNOT_KIT__X=1\n'
    )
    config = find_kit_config(tmp_path, {})
    assert config is not None and config.sources == [".env"]
    conversion = convert(config)
    assert conversion.settings == {
        "server": {"host": "0.0.0.0"},
        "load_builtin_plugins": ["echo"],
        "plugins": {"proxy": {"upstreams": {"http://127.0.0.1:9000": {"enable": [], "disable": []}}}},
    }
    assert ("load_builtin_plugins: invoker", "FrameX has no built-in plugin `invoker`.") in conversion.dropped


def test_unknown_proxy_url_rule_keys_are_errors(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[plugins.proxy.proxy_urls."http://h:1"]\nenabled = ["/x"]\n')
    config = find_kit_config(tmp_path, {})
    assert config is not None
    with pytest.raises(ConfigError, match=r"proxy_urls.http://h:1` has unknown key\(s\) enabled; accepted: enable"):
        convert(config)
