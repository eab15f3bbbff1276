"""The accounts' settings: every bad one stops gunicorn's master with one line naming it, and a
database that cannot be migrated at start-up too."""

from __future__ import annotations

import pytest

from app.config import ConfigError, Settings
from tests.support.live_gateway import free_port


@pytest.mark.parametrize(("env", "named"), [
    ({"DATABASE_URL": "mysql://db/gateway"}, "invalid DATABASE_URL='mysql://db/gateway'"),
    ({"DATABASE_URL": "sqlite://"}, "in-memory database is not shared"),
    ({"DATABASE_URL": "postgresql+psycopg2://u:pw@h/db"}, "invalid DATABASE_URL='postgresql+psycopg2://u:***@h/db'"),
    ({"ADMIN_API_KEY": "short"}, "invalid ADMIN_API_KEY=<hidden>: use at least 16 characters"),
    ({"USAGE_FLUSH_INTERVAL": "0s"}, "invalid USAGE_FLUSH_INTERVAL"),
    ({"USAGE_BUFFER_ROWS": "5"}, "invalid USAGE_BUFFER_ROWS=5"),
    ({"ACCOUNTS_ENABLE": "maybe"}, "invalid ACCOUNTS_ENABLE='maybe'"),
])
def test_bad_settings_stop_the_master_with_one_line(live_gateway, env, named):
    finished = live_gateway.expect_exit({"ACCOUNTS_ENABLE": "true", **env})
    assert finished.returncode == 2
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], finished.stderr
    assert "pw" not in finished.stderr


def test_a_database_that_cannot_be_migrated_stops_the_master_with_one_line(live_gateway):
    url = f"postgresql+pg8000://postgres:secret-pw@127.0.0.1:{free_port()}/gateway"
    finished = live_gateway.expect_exit({"ACCOUNTS_ENABLE": "true", "DATABASE_URL": url})
    assert finished.returncode == 2
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("inference-gateway: cannot migrate DATABASE_URL=")
    assert "secret-pw" not in finished.stderr and "***@127.0.0.1" in lines[0]


def test_virtual_keys_alone_satisfy_auth_enable():
    Settings.from_environ({"AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": "", "ACCOUNTS_ENABLE": "true"})
    with pytest.raises(ConfigError, match="ACCOUNTS_ENABLE"):
        Settings.from_environ({"AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": ""})


def test_the_database_password_is_a_secret():
    settings = Settings.from_environ({"DATABASE_URL": "postgresql+pg8000://gw:s3cret-pass@db/gateway"})
    assert "s3cret-pass" in settings.secret_values()
    assert "s3cret-pass" not in repr(settings)
