"""`flask --app wsgi db upgrade` and `flask --app wsgi keys create|list|revoke|usage`, run as a user
runs them, against SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.live_gateway import ROOT, gateway_environ


def flask(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = gateway_environ({"DATABASE_URL": database_url, **env})
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=60, check=False)


def test_db_upgrade_then_keys_from_the_command_line(database_url):
    upgraded = flask(database_url, "db", "upgrade", DATABASE_AUTO_MIGRATE="false")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "is at revision 0003_usage_error" in upgraded.stdout
    assert flask(database_url, "db", "upgrade").returncode == 0  # again: nothing to do

    created = flask(database_url, "keys", "create", "--name", "cli-key", "--owner", "ops", "--model", "openai/gpt-4o",
                    "--model", "fast", "--rpm", "30", "--budget-usd", "12.5", "--budget-period", "total",
                    "--expires-at", "2099-06-01", "--metadata", '{"ticket": 42}')
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    secret = key["secret"]
    assert secret.startswith("sk-gw-") and key["models"] == ["openai/gpt-4o", "fast"]
    assert (key["rpm"], key["budget_usd"], key["budget_period"]) == (30, 12.5, "total")
    assert key["expires_at"] == "2099-06-01T00:00:00Z" and key["metadata"] == {"ticket": 42}
    assert "not shown again" in created.stderr and secret not in created.stderr

    listed = flask(database_url, "keys", "list")
    assert listed.returncode == 0 and secret not in listed.stdout
    assert [k["id"] for k in json.loads(listed.stdout)] == [key["id"]]

    usage = flask(database_url, "keys", "usage", "--group-by", "key")
    assert usage.returncode == 0 and json.loads(usage.stdout)["totals"]["requests"] == 0
    as_csv = flask(database_url, "keys", "usage", "--csv")
    assert as_csv.stdout.splitlines()[0].startswith("time,request_id,key_id")

    revoked = flask(database_url, "keys", "revoke", key["id"])
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["status"] == "revoked"
    unknown = flask(database_url, "keys", "revoke", "key_nope")
    assert unknown.returncode == 1 and "No key with id 'key_nope'" in unknown.stderr


def test_bad_command_line_input_names_the_field(tmp_path):
    url = f"sqlite:///{tmp_path / 'g.db'}"
    zero = flask(url, "keys", "create", "--name", "x", "--rpm", "0")
    assert zero.returncode == 2 and "rpm:" in zero.stderr
    past = flask(url, "keys", "create", "--name", "x", "--expires-at", "2001-01-01")
    assert past.returncode == 1 and "expires_at: must be in the future" in past.stderr
    bad_group = flask(url, "keys", "usage", "--group-by", "week")
    assert bad_group.returncode == 2
