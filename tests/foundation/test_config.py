import ipaddress
from pathlib import Path

import pytest
import yaml

from app.config import RENAMED, ConfigError, Settings, declared_fields, parse_duration
from app.config_docs import configuration_markdown
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
    assert set(ours) <= set(spec_settings), f"settings missing from x-config: {sorted(set(ours) - set(spec_settings))}"
    for env, default in spec_settings.items():
        if env.endswith("_API_URL") and env not in ours:
            assert settings.provider_urls[env[: -len("_API_URL")].lower()] == default
        elif env.endswith("_API_KEY") and env not in ours:
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


# -- Settings is the only validator: every format and cross-field check, one line each ---------------
BAD = [
    ({"RATE_LIMIT_DEFAULT": "lots/minute"},
     "invalid RATE_LIMIT_DEFAULT='lots/minute': expected limits such as 60/minute;1000/hour"),
    ({"TRUSTED_PROXIES": "10.0.0.0/8, proxy.example"},
     "invalid TRUSTED_PROXIES='10.0.0.0/8, proxy.example': 'proxy.example' is not an IP address or CIDR"),
    ({"RATE_LIMIT_TOKENS_PER_MINUTE": "-5"}, "invalid RATE_LIMIT_TOKENS_PER_MINUTE='-5': must be at least 0"),
    ({"RATE_LIMIT_STORAGE_URI": "postgres://db/limits"},
     ("invalid RATE_LIMIT_STORAGE_URI='postgres://db/limits': expected a storage URI such as memory:// or "
     "redis://host:6379/0")),
    ({"RATE_LIMIT_STORAGE_URI": "async+redis://127.0.0.1:6379"},
     ("invalid RATE_LIMIT_STORAGE_URI='async+redis://127.0.0.1:6379': expected a storage URI such as memory:// or "
     "redis://host:6379/0")),
    ({"RATE_LIMIT_STORAGE_URI": "redis://127.0.0.1:port/0"},
     "invalid RATE_LIMIT_STORAGE_URI='redis://127.0.0.1:port/0': the port is not a number from 0 to 65535"),
    ({"MCP_SERVERS": "http://127.0.0.1:3000/mcp, tools.internal/mcp"},
     ("invalid MCP_SERVERS='http://127.0.0.1:3000/mcp, tools.internal/mcp': 'tools.internal/mcp' is not an "
     "http:// or https:// URL")),
    ({"AUTH_OIDC_ISSUER": "keycloak:8080/realms/gw"},
     "invalid AUTH_OIDC_ISSUER='keycloak:8080/realms/gw': expected an http:// or https:// URL"),
    ({"OPENAI_API_URL": "https://api.openai.com:port/v1"},
     ("invalid OPENAI_API_URL='https://api.openai.com:port/v1': expected an http:// or https:// URL (its port is "
     "not a number from 0 to 65535)")),
    ({"CLOUDFLARE_API_KEY": "cf-token"},
     "invalid CLOUDFLARE_API_KEY=<hidden>: set CLOUDFLARE_ACCOUNT_ID too (it fills {ACCOUNT_ID} in CLOUDFLARE_API_URL)"),
    ({"CLOUDFLARE_ACCOUNT_ID": "abc/../x", "CLOUDFLARE_API_KEY": "cf-token"},
     "invalid CLOUDFLARE_ACCOUNT_ID='abc/../x': expected letters and digits only"),
    ({"LOG_LEVEL": "verbose"},
     "invalid LOG_LEVEL='verbose': expected one of debug, info, warning, warn, error, critical"),
    ({"CLIENT_TLS_MIN_VERSION": "TLS11"}, "invalid CLIENT_TLS_MIN_VERSION='TLS11': expected one of TLS12, TLS13"),
    ({"SERVER_HOST": "gateway host"}, "invalid SERVER_HOST='gateway host': expected an IP address or a host name"),
    ({"SERVER_PORT": "70000"}, "invalid SERVER_PORT='70000': expected a port number from 0 to 65535"),
    ({"PORT": "web"}, "invalid PORT='web': expected a port number from 0 to 65535"),
    ({"TELEMETRY_METRICS_PORT": "0"}, "invalid TELEMETRY_METRICS_PORT='0': must be at least 1"),
    ({"TELEMETRY_ENABLE": "true", "SERVER_PORT": "9464"},
     "invalid TELEMETRY_METRICS_PORT=9464: the gateway itself listens on that port (SERVER_PORT)"),
    ({"MCP_MAX_ITERATIONS": "0"}, "invalid MCP_MAX_ITERATIONS='0': must be at least 1"),
    ({"MCP_MAX_RETRIES": "0"}, "invalid MCP_MAX_RETRIES='0': must be at least 1"),
    ({"MCP_POLLING_INTERVAL": "0"}, "invalid MCP_POLLING_INTERVAL='0': must be at least 1ms"),
    ({"CLIENT_TIMEOUT": "0"}, "invalid CLIENT_TIMEOUT='0': must be at least 1ms"),
    ({"SERVER_MAX_REQUEST_BODY_SIZE": "0"}, "invalid SERVER_MAX_REQUEST_BODY_SIZE='0': must be at least 1"),
    ({"DEBUG_MAX_MESSAGES": "-1"}, "invalid DEBUG_MAX_MESSAGES='-1': must be at least 0"),
    ({"WEB_CONCURRENCY": "0"}, "invalid WEB_CONCURRENCY='0': must be at least 1"),
    ({"CLIENT_IDLE_CONN_TIMEOUT": "soon"},  # ignored, but a bad value is still refused
     "invalid CLIENT_IDLE_CONN_TIMEOUT='soon': expected a duration such as 30s, 1m30s or 500ms"),
    ({"AUTH_API_KEYS": "good-key-0123456789,header.payload.signature"},
     ("invalid API key in AUTH_API_KEYS/AUTH_API_KEYS_FILE: a key must not have the shape of a JWT "
     "(three dot-separated parts)")),
]


@pytest.mark.parametrize("environ,message", BAD, ids=[next(iter(env)) for env, _ in BAD])
def test_every_bad_value_is_one_line_naming_its_variable(environ, message):
    with pytest.raises(ConfigError) as info:
        Settings.from_environ(environ)
    assert str(info.value) == message


def test_a_jwt_shaped_key_is_not_echoed():
    with pytest.raises(ConfigError) as info:
        Settings.from_environ({"AUTH_API_KEYS": "header.payload.signature"})
    assert "payload" not in str(info.value)


def test_settings_hand_downstream_typed_values(tmp_path):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# team\nfile-key-0123456789\n\nlist-key-0123456789\n")
    settings = Settings.from_environ({
        "TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7, ::1", "SERVER_HOST": "[::1]", "PORT": "5000",
        "AUTH_ENABLE": "true", "AUTH_API_KEYS": "list-key-0123456789", "AUTH_API_KEYS_FILE": str(keys_file),
        "RATE_LIMIT_DEFAULT": " 5/second ; 100/hour "})
    assert settings.trusted_proxies == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("192.168.1.7/32"),
                                        ipaddress.ip_network("::1/128"))
    assert settings.server_host == "::1" and settings.port == 5000
    assert settings.api_keys == ("list-key-0123456789", "file-key-0123456789")  # once each, list first
    assert "file-key-0123456789" in settings.secret_values()  # redacted from logs like the others
    assert settings.rate_limit_default == "5/second ; 100/hour"
    assert Settings.from_environ({}).port is None


def test_keys_file_that_is_not_utf8_is_refused(tmp_path):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_bytes(b"\xff\xfekey\n")
    with pytest.raises(ConfigError) as info:
        Settings.from_environ({"AUTH_ENABLE": "true", "AUTH_API_KEYS_FILE": str(keys_file)})
    assert str(info.value) == f"invalid AUTH_API_KEYS_FILE={str(keys_file)!r}: not UTF-8 text"


@pytest.mark.parametrize("old,new", list(RENAMED.items()))
def test_an_old_name_that_is_set_stops_start_up_naming_its_replacement(old, new):
    with pytest.raises(ConfigError) as info:
        Settings.from_environ({old: "true", new: "true"})
    assert str(info.value) == f"{old} is not read by this gateway: set {new} instead"
    assert new in {f.metadata["env"] for f in declared_fields()}


def test_ignored_settings_are_reported_only_when_set():
    assert Settings.from_environ({"CLIENT_TIMEOUT": "5s"}).ignored_settings() == []
    lines = Settings.from_environ({"CLIENT_IDLE_CONN_TIMEOUT": "30s", "AUTH_OIDC_CLIENT_SECRET": "s3cr3t-value",
                                   "MCP_EXPECT_CONTINUE_TIMEOUT": "1s", "CLIENT_EXPECT_CONTINUE_TIMEOUT": "2s"}
                                  ).ignored_settings()
    assert [line.split(" ", 1)[0] for line in lines] == [
        "MCP_EXPECT_CONTINUE_TIMEOUT", "AUTH_OIDC_CLIENT_SECRET", "CLIENT_IDLE_CONN_TIMEOUT",
        "CLIENT_EXPECT_CONTINUE_TIMEOUT"]
    assert all(" is set but ignored: " in line for line in lines)
    assert not any("s3cr3t-value" in line for line in lines)


def test_the_docs_say_which_settings_are_ignored_and_which_names_are_old():
    doc = configuration_markdown()
    ignored = doc.split("## Ignored settings", 1)[1].split("##", 1)[0]
    for env in ("CLIENT_IDLE_CONN_TIMEOUT", "CLIENT_EXPECT_CONTINUE_TIMEOUT", "MCP_EXPECT_CONTINUE_TIMEOUT",
                "AUTH_OIDC_CLIENT_SECRET"):
        assert f"`{env}`" in ignored
        row = next(line for line in doc.splitlines() if line.startswith("| ") and f"| `{env}` |" in line)
        assert "**Ignored**" in row
    for old, new in RENAMED.items():
        assert f"| `{old}` | `{new}` |" in doc


def test_no_module_but_config_raises_config_error():
    """Settings is the only validator: anything else that found a bad setting would do so in a worker."""
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "app").rglob("*.py")
                 if path.name not in ("config.py", "config_values.py", "config_docs.py")
                 and "raise ConfigError" in path.read_text()]
    assert offenders == []
