"""What `gunicorn wsgi:app` does with a bad setting, an old name, or a setting that does nothing here.

A bad value stops the master before any worker starts: exit status 2 and exactly one line that
names the variable, never a worker's traceback (exit 3). Values that used to be found bad only by
a worker (rate limits, trusted proxies, API keys, MCP URLs...) are refused the same way.
"""

from __future__ import annotations

import json

import pytest

from tests.support.certificates import self_signed

REFUSED = [
    # (environment, the variable the one line must name)
    ({"RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_DEFAULT": "lots/minute"}, "RATE_LIMIT_DEFAULT"),
    ({"RATE_LIMIT_ENABLE": "true", "TRUSTED_PROXIES": "10.0.0.0/8, proxy.example"}, "TRUSTED_PROXIES"),
    ({"RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_TOKENS_PER_MINUTE": "-5"}, "RATE_LIMIT_TOKENS_PER_MINUTE"),
    ({"RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_STORAGE_URI": "postgres://127.0.0.1/limits"}, "RATE_LIMIT_STORAGE_URI"),
    ({"MCP_ENABLE": "true", "MCP_SERVERS": "http://127.0.0.1:3000/mcp,tools.internal/mcp"}, "MCP_SERVERS"),
    ({"MCP_ENABLE": "true", "MCP_MAX_ITERATIONS": "0"}, "MCP_MAX_ITERATIONS"),
    ({"AUTH_ENABLE": "true", "AUTH_API_KEYS": "header.payload.signature"}, "AUTH_API_KEYS"),
    ({"AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": "keycloak:8080/realms/gw"}, "AUTH_OIDC_ISSUER"),
    ({"CLOUDFLARE_API_KEY": "cf-token"}, "CLOUDFLARE_API_URL"),  # still the catalog's {ACCOUNT_ID}
    ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL"),
    ({"SERVER_HOST": "gateway host"}, "SERVER_HOST"),
    ({"PORT": "web"}, "PORT"),
    ({"TELEMETRY_ENABLE": "true", "TELEMETRY_METRICS_PORT": "8080", "SERVER_PORT": "8080"}, "TELEMETRY_METRICS_PORT"),
    ({"CLIENT_TIMEOUT": "0"}, "CLIENT_TIMEOUT"),
    ({"CLIENT_TLS_MIN_VERSION": "TLS11"}, "CLIENT_TLS_MIN_VERSION"),
    ({"ENABLE_AUTH": "true"}, "ENABLE_AUTH"),
    ({"AUTH_ENABLED": "true"}, "AUTH_ENABLED"),
]


def assert_refused(result, variable: str) -> str:
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2, output
    [line] = output.splitlines()
    assert line.startswith("inference-gateway: ") and variable in line
    return line


@pytest.mark.parametrize("env,variable", REFUSED, ids=[variable for _, variable in REFUSED])
def test_a_bad_value_stops_the_master_with_one_line(live_gateway, env, variable):
    assert_refused(live_gateway.expect_exit(env), variable)


def test_an_old_name_names_its_replacement(live_gateway):
    line = assert_refused(live_gateway.expect_exit({"OIDC_ISSUER_URL": "http://127.0.0.1:1/realms/x"}), "OIDC_ISSUER_URL")
    assert line == "inference-gateway: OIDC_ISSUER_URL is not read by this gateway: set AUTH_OIDC_ISSUER instead"


def test_a_keys_file_that_is_not_text_stops_the_master(live_gateway, tmp_path):
    keys_file = tmp_path / "keys.bin"
    keys_file.write_bytes(b"\xff\xfe\x00binary")
    line = assert_refused(live_gateway.expect_exit({"AUTH_ENABLE": "true", "AUTH_API_KEYS_FILE": str(keys_file)}),
                          "AUTH_API_KEYS_FILE")
    assert line.endswith("not UTF-8 text")


def test_a_certificate_and_a_key_that_do_not_match_stop_the_master(live_gateway, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cert, _ = self_signed(tmp_path / "a")
    _, other_key = self_signed(tmp_path / "b")
    line = assert_refused(live_gateway.expect_exit({"SERVER_TLS_CERT_PATH": str(cert),
                                                    "SERVER_TLS_KEY_PATH": str(other_key)}),
                          "SERVER_TLS_CERT_PATH/SERVER_TLS_KEY_PATH")
    assert "cannot load the pair" in line


def test_ignored_settings_are_logged_once_by_the_master_and_secrets_never(live_gateway):
    secret = "oidc-client-secret-0123456789"
    gateway = live_gateway({"CLIENT_IDLE_CONN_TIMEOUT": "90s", "AUTH_OIDC_CLIENT_SECRET": secret}, workers=2)
    assert gateway.stop() == 0
    logs = gateway.logs()
    entries = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    ignored = [e for e in entries if "is set but ignored" in e["message"]]
    assert sorted(e["message"].split(" ", 1)[0] for e in ignored) == ["AUTH_OIDC_CLIENT_SECRET",
                                                                       "CLIENT_IDLE_CONN_TIMEOUT"]
    assert all(e["level"] == "warning" and e["logger"] == "gunicorn.error" for e in ignored)  # the master's
    assert secret not in logs
