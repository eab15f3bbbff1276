from pathlib import Path

import pytest
import yaml

from app.config import ConfigError, Settings, configuration_markdown, declared_fields, parse_duration
from tests.support.live_gateway import ROOT


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200), ("0", 0),
                                          ("1.5s", 1.5), ("100us", 0.0001)])
def test_go_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["banana", "30", "1m30", "s", "-5s", "30 s", ""])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("raw,value", [("true", True), ("1", True), ("yes", True), ("YES", True),
                                       ("false", False), ("0", False), ("no", False)])
def test_booleans(raw, value):
    assert Settings.from_environ({"ENABLE_VISION": raw}).enable_vision is value


def test_invalid_value_names_variable_and_value():
    with pytest.raises(ConfigError) as info:
        Settings.from_environ({"CLIENT_TIMEOUT": "banana"})
    assert "CLIENT_TIMEOUT" in str(info.value) and "'banana'" in str(info.value)
    assert "\n" not in str(info.value)


def test_invalid_secret_value_is_not_echoed():
    with pytest.raises(ConfigError) as info:
        Settings.from_environ({"OPENAI_API_URL": "not a url"})
    assert "OPENAI_API_URL" in str(info.value)


def test_defaults_match_the_spec_x_config():
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    sections = spec["components"]["schemas"]["Config"]["x-config"]["sections"]
    spec_settings = {s["env"]: s.get("default", "") for section in sections for body in section.values()
                     for s in body["settings"]}
    ours = {f.metadata["env"]: f.metadata["default"] for f in declared_fields()}
    settings = Settings.from_environ({})
    for env, default in spec_settings.items():
        if env.endswith("_API_URL"):
            assert settings.provider_urls[env[: -len("_API_URL")].lower()] == default
        elif env.endswith("_API_KEY"):
            assert settings.provider_keys[env[: -len("_API_KEY")].lower()] == ""
        else:
            assert env in ours, f"{env} from the spec is not a setting"
            assert ours[env] == default, f"{env}: spec default {default!r}, ours {ours[env]!r}"


def test_settings_parse_real_values():
    settings = Settings.from_environ({"CLIENT_TIMEOUT": "1m30s", "MCP_SERVERS": " http://a/mcp , ,http://b/mcp ",
                                      "SERVER_MAX_REQUEST_BODY_SIZE": "1MiB", "CLIENT_MAX_IDLE_CONNS_PER_HOST": "256"})
    assert settings.client_timeout == 90
    assert settings.mcp_servers == ("http://a/mcp", "http://b/mcp")
    assert settings.server_max_request_body_size == 1024 * 1024
    assert settings.client_max_idle_conns_per_host == 256


def test_secrets_are_not_in_repr():
    settings = Settings.from_environ({"OPENAI_API_KEY": "sk-very-secret", "AUTH_API_KEYS": "gw-key-1"})
    assert "sk-very-secret" not in repr(settings)
    assert "gw-key-1" not in repr(settings)
    assert {"sk-very-secret", "gw-key-1"} <= set(settings.secret_values())


def test_configuration_doc_is_current():
    doc = Path(ROOT / "docs" / "configuration.md").read_text()
    assert doc == configuration_markdown(), "docs/configuration.md is stale: run make docs"


def test_dotenv_file_is_read_and_environment_wins(tmp_path, monkeypatch):
    from app.config import environment_with_dotenv

    (tmp_path / ".env").write_text("CLIENT_TIMEOUT=5s\nDEBUG_MAX_MESSAGES=7\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEBUG_MAX_MESSAGES", "9")
    settings = Settings.from_environ(environment_with_dotenv())
    assert settings.client_timeout == 5
    assert settings.debug_max_messages == 9
