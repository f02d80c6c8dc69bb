from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from framex.config import load_settings, validate_plugin_config
from framex.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "framex.yaml"
    path.write_text(text)
    return path


def test_defaults_without_any_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, environ={})
    assert settings.adapter == "local"
    assert settings.server.port == 8080
    assert settings.load_plugins == []


def test_default_file_is_config_local_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "local.yaml").write_text("server: {port: 9100}\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings(None, environ={}).server.port == 9100


def test_framex_config_env_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "server: {port: 9200}\n")
    monkeypatch.setenv("FRAMEX_CONFIG", str(path))
    assert load_settings(None, environ={}).server.port == 9200


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"`.*nope.yaml` does not exist.*--config PATH"):
        load_settings(tmp_path / "nope.yaml", environ={})


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: [1,\n")
    with pytest.raises(ConfigError, match=r"framex.yaml` is not valid YAML at line \d+"):
        load_settings(path, environ={})


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_settings(write(tmp_path, "- a\n- b\n"), environ={})


def test_unknown_key_lists_accepted_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"`sever`: unknown key\. Accepted keys here: adapter, .*server"):
        load_settings(write(tmp_path, "sever: {port: 1}\n"), environ={})


def test_nested_unknown_key_and_wrong_type_reported_together(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {prot: 1}\nlocal: {max_workers: lots}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    message = str(info.value)
    accepted = re.search(r"`server\.prot`: unknown key\. Accepted keys here: ([\w, ]+)\.", message)
    assert accepted is not None
    assert {"host", "port", "title"} <= set(accepted.group(1).split(", "))
    assert "`local.max_workers`" in message and "'lots'" in message


def test_adapter_must_be_known(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"`adapter`: Input should be 'local' or 'ray'"):
        load_settings(write(tmp_path, "adapter: kubernetes\n"), environ={})


def test_interpolation_with_defaults_and_types(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_HOST", "0.0.0.0")
    path = write(
        tmp_path,
        "server:\n  host: ${MY_HOST}\n  port: ${MY_PORT:9300}\n  title: 'api on ${MY_HOST:x}'\n",
    )
    settings = load_settings(path, environ={})
    assert settings.server.host == "0.0.0.0"
    assert settings.server.port == 9300
    assert settings.server.title == "api on 0.0.0.0"


def test_interpolation_of_unset_variable_without_default(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  host: ${SURELY_UNSET_VAR_123}\n")
    with pytest.raises(ConfigError, match=r"`server.host` uses `\$\{SURELY_UNSET_VAR_123\}`.*not set"):
        load_settings(path, environ={})


def test_environment_overrides_nest_and_parse(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {port: 1000}\n")
    env = {
        "FRAMEX__SERVER__PORT": "9400",
        "FRAMEX__LOAD_BUILTIN_PLUGINS": "[echo]",
        "FRAMEX__PLUGINS__DEMO__GREETING": "yo",
        "FRAMEX_CONFIG_UNRELATED": "x",
        "PATH": "/bin",
        "FRAMEXY": "1",
    }
    settings = load_settings(path, environ=env)
    assert settings.server.port == 9400
    assert settings.load_builtin_plugins == ["echo"]
    assert settings.plugins == {"demo": {"greeting": "yo"}}


def test_environment_typo_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="set by environment variable `FRAMEX__SERVER__PROT`"):
        load_settings(None, environ={"FRAMEX__SERVER__PROT": "1"})


def test_overrides_beat_environment_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {port: 1000, host: 127.0.0.2}\n")
    settings = load_settings(path, {"server__port": 9500, "adapter": None}, environ={"FRAMEX__SERVER__PORT": "2000"})
    assert settings.server.port == 9500
    assert settings.server.host == "127.0.0.2"  # untouched keys of a section survive
    assert load_settings(path, {"server": {"port": 9600}}, environ={}).server.host == "127.0.0.2"


class PluginConf(BaseModel):
    greeting: str = "hi"
    times: int = 1


def test_plugin_config_is_strict() -> None:
    assert validate_plugin_config("demo", {"times": "3"}, PluginConf) == PluginConf(times=3)
    assert validate_plugin_config("demo", None, PluginConf) == PluginConf()
    with pytest.raises(
        ConfigError, match=r"`plugins.demo`\) has unknown key\(s\): greting\. Accepted keys: greeting, times"
    ):
        validate_plugin_config("demo", {"greting": "x"}, PluginConf)
    with pytest.raises(ConfigError, match=r"`plugins.demo.times`"):
        validate_plugin_config("demo", {"times": "many"}, PluginConf)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("9000", 9000),
        ("1.5", 1.5),
        ("true", True),
        ("null", None),
        ("[a, b]", ["a", "b"]),
        ("{k: 1}", {"k": 1}),
        ("0123", "0123"),
        ("yes", "yes"),
        ("2024-01-01", "2024-01-01"),
        ("[unclosed", "[unclosed"),
        ("", ""),
    ],
)
def test_environment_values_keep_their_text_unless_clearly_typed(raw: str, value: object) -> None:
    from framex.config import env_overrides

    tree, _ = env_overrides({"FRAMEX__PLUGINS__P__V": raw})
    assert tree == {"plugins": {"p": {"v": value}}}


def test_numeric_text_is_fine_for_string_settings() -> None:
    assert load_settings(None, environ={"FRAMEX__SERVER__TITLE": "2024"}).server.title == "2024"
