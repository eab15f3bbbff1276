"""`flask --app wsgi doctor`, run as an operator runs it before a deploy, against real servers: fake
providers (answering, down, 401, hanging), the local OIDC issuer, the real Redis and a closed port,
SQLite and a fresh PostgreSQL before and after `db upgrade`, the FastMCP test server, and TLS
files made here."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from alembic.script import ScriptDirectory
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.accounts.migrate import alembic_config
from tests.accounts.conftest import PostgresDatabases
from tests.support.fake_provider import FakeProvider, Reply, json_reply
from tests.support.live_gateway import ROOT, gateway_environ
from tests.support.mcp_process import MCPServerProcess
from tests.support.oidc_issuer import OidcIssuer
from tests.support.ports import reserved_port

OPENAI_KEY = "sk-doctor-openai-key-7f3a9c"
GROQ_KEY = "gsk-doctor-groq-key-51be02"
DEPLOYMENT_KEY = "dep-doctor-file-key-a8d4e1"
ADMIN_KEY = "admin-doctor-key-0123456789abcdef"
DB_PASSWORD = "pw-doctor-db-c0ffee42"
SECRETS = (OPENAI_KEY, GROQ_KEY, DEPLOYMENT_KEY, ADMIN_KEY, DB_PASSWORD)
MODELS = {"object": "list", "data": [{"id": "gpt-4o", "object": "model", "created": 1, "owned_by": "openai"},
                                     {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "openai"}]}

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()  # the code's newest migration


def doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "doctor", *args], cwd=ROOT,
                          env=gateway_environ(env), capture_output=True, text=True, timeout=60, check=False)


def doctor_json(env: dict[str, str]) -> tuple[int, dict[tuple[str, str], dict]]:
    run = doctor(env, "--json")
    report = json.loads(run.stdout)
    assert report["ok"] is (run.returncode == 0)
    return run.returncode, {(check["name"], check["target"].split(" ")[0]): check for check in report["checks"]}


def flask_db_upgrade(database_url: str) -> None:
    upgraded = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                              env=gateway_environ({"DATABASE_URL": database_url}), capture_output=True, text=True,
                              timeout=60, check=False)
    assert upgraded.returncode == 0, upgraded.stderr


def certificate(tmp_path, name: str, *, days: float) -> tuple[str, str]:
    """A self-signed pair valid until `days` from now (negative: already expired)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=400))
            .not_valid_after(now + datetime.timedelta(days=days)).sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def providers() -> Iterator[dict[str, FakeProvider]]:
    """`up` lists two models; `refusing` answers 401 echoing the key it got; `hanging` never answers."""
    up, refusing, hanging = FakeProvider().start(), FakeProvider().start(), FakeProvider().start()
    up.on("GET", "/v1/models", json_reply(MODELS))
    refusing.on("GET", "/v1/models", lambda request: json_reply(
        {"error": {"message": f"Incorrect API key provided: {request.headers.get('authorization', '')}"}}, 401))
    hanging.on("GET", "/v1/models", Reply(hang=10, body=b"{}"))
    yield {"up": up, "refusing": refusing, "hanging": hanging}
    for fake in (up, refusing, hanging):
        fake.stop()


@pytest.fixture(scope="module")
def mcp_server(tmp_path_factory) -> Iterator[MCPServerProcess]:
    server = MCPServerProcess(log_dir=tmp_path_factory.mktemp("mcp")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def issuer() -> Iterator[OidcIssuer]:
    issuer = OidcIssuer(audience="gateway").start()
    yield issuer
    issuer.stop()


@pytest.fixture
def postgres_databases() -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases()
    yield databases
    databases.drop_all()


def test_a_healthy_setup_passes_with_one_row_per_check(tmp_path, providers, mcp_server, issuer):
    database_url = f"sqlite:///{tmp_path / 'gateway.db'}"
    flask_db_upgrade(database_url)
    cert, key = certificate(tmp_path, "good", days=90)
    env = {"OPENAI_API_URL": providers["up"].url + "/v1", "OPENAI_API_KEY": OPENAI_KEY,
           "AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": issuer.url, "AUTH_OIDC_CLIENT_ID": "gateway",
           "RATE_LIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0",
           "ACCOUNTS_ENABLE": "true", "DATABASE_URL": database_url, "DATABASE_AUTO_MIGRATE": "false",
           "MCP_ENABLE": "true", "MCP_SERVERS": mcp_server.url,
           "SERVER_TLS_CERT_PATH": cert, "SERVER_TLS_KEY_PATH": key}

    run = doctor(env)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["CHECK", "TARGET", "STATUS", "LATENCY", "DETAIL"]
    rows = [line.split()[0] for line in lines[1:] if line.strip()][:-1]
    assert rows == ["settings", "provider", "oidc", "redis", "database", "mcp", "tls"]  # a stable order
    assert lines[-1] == "7 ok"
    assert all(line.index("OK") == lines[0].index("STATUS") for line in lines[1:8])  # one aligned table

    status, checks = doctor_json(env)
    assert status == 0
    openai = checks[("provider", "openai")]
    assert openai["status"] == "ok" and openai["detail"] == "2 models" and openai["latency_ms"] > 0
    assert openai["target"] == f"openai {providers['up'].url}/v1"
    assert checks[("oidc", issuer.url)]["detail"] == "discovery and JWKS: 1 signing key"
    assert checks[("redis", "redis://127.0.0.1:6379/0")]["detail"] == "answers PING"
    assert checks[("database", database_url)]["detail"] == f"schema at revision {HEAD}"
    assert checks[("mcp", mcp_server.url)]["detail"].startswith("3 tools offered: ")
    assert "the certificate expires on" in checks[("tls", cert)]["detail"]


def test_failures_exit_1_and_name_what_is_wrong_without_a_secret(tmp_path, providers, postgres_databases):
    closed = reserved_port()
    database_url = postgres_databases.create().replace("postgres@", f"postgres:{DB_PASSWORD}@")
    config = tmp_path / "gateway.yaml"
    config.write_text(f"deployments:\n  slow:\n    kind: openai\n    base_url: {providers['hanging'].url}/v1\n"
                      f"    api_key: {DEPLOYMENT_KEY}\n")
    expiring, expiring_key = certificate(tmp_path, "expiring", days=5)
    down_issuer = OidcIssuer(audience="gateway").reserve()
    env = {"OPENAI_API_URL": providers["refusing"].url + "/v1", "OPENAI_API_KEY": OPENAI_KEY,
           "GROQ_API_URL": f"http://127.0.0.1:{closed}/v1", "GROQ_API_KEY": GROQ_KEY,
           "GATEWAY_CONFIG": str(config), "CLIENT_RESPONSE_HEADER_TIMEOUT": "1s", "CLIENT_TIMEOUT": "1s",
           "AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": down_issuer.url, "ADMIN_API_KEY": ADMIN_KEY,
           "RATE_LIMIT_STORAGE_URI": f"redis://127.0.0.1:{closed}/0",
           "ACCOUNTS_ENABLE": "true", "DATABASE_URL": database_url, "DATABASE_AUTO_MIGRATE": "false",
           "MCP_ENABLE": "true", "MCP_SERVERS": f"http://127.0.0.1:{closed}/mcp",
           "SERVER_TLS_CERT_PATH": expiring, "SERVER_TLS_KEY_PATH": expiring_key}

    table_run = doctor(env)
    json_run = doctor(env, "--json")
    for run in (table_run, json_run):
        assert run.returncode == 1, run.stdout + run.stderr
        for secret in SECRETS:
            assert secret not in run.stdout + run.stderr
    assert "Traceback" not in table_run.stderr + json_run.stderr

    checks = {(c["name"], c["target"].split(" ")[0]): c for c in json.loads(json_run.stdout)["checks"]}
    statuses = {key: check["status"] for key, check in checks.items()}
    assert statuses == {("settings", ".env"): "ok", ("provider", "groq"): "fail", ("provider", "openai"): "fail", ("provider", "slow"): "fail",
                        ("oidc", down_issuer.url): "fail", ("redis", f"redis://127.0.0.1:{closed}/0"): "fail",
                        ("database", database_url.replace(DB_PASSWORD, "***")): "fail",
                        ("mcp", f"http://127.0.0.1:{closed}/mcp"): "fail", ("tls", expiring): "warn"}
    assert checks[("provider", "openai")]["detail"] == "answered HTTP 401 to the model list (check OPENAI_API_KEY)"
    assert checks[("provider", "groq")]["detail"] == "Provider groq could not be reached."
    assert checks[("provider", "slow")]["detail"] in (  # the header deadline or the read timeout, both 1s
        "Provider slow did not send its response headers within 1s.", "Provider slow did not answer in time.")
    assert checks[("oidc", down_issuer.url)]["detail"].startswith(f"discovery at {down_issuer.url}/.well-known/")
    assert checks[("database", database_url.replace(DB_PASSWORD, "***"))]["detail"] == (
        f"schema at revision (none), code at {HEAD}: run `flask --app wsgi db upgrade`")
    assert checks[("tls", expiring)]["detail"].endswith(("in 4 days", "in 5 days"))
    assert table_run.stdout.splitlines()[-1] == "7 fail, 1 warn, 1 ok"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_database_before_and_after_db_upgrade(backend, tmp_path, postgres_databases):
    url = f"sqlite:///{tmp_path / 'fresh.db'}" if backend == "sqlite" else postgres_databases.create()
    env = {"ACCOUNTS_ENABLE": "true", "DATABASE_URL": url, "DATABASE_AUTO_MIGRATE": "false"}

    status, checks = doctor_json(env)
    assert status == 1 and checks[("database", url)]["status"] == "fail"
    assert checks[("database", url)]["detail"].endswith("run `flask --app wsgi db upgrade`")
    if backend == "sqlite":  # the doctor did not create the file; with auto-migrate, gunicorn's master will
        assert not (tmp_path / "fresh.db").exists()
        _, checks = doctor_json({**env, "DATABASE_AUTO_MIGRATE": "true"})
        assert checks[("database", url)]["status"] == "warn"

    flask_db_upgrade(url)
    status, checks = doctor_json(env)
    assert status == 0 and checks[("database", url)]["status"] == "ok"


def test_an_expired_certificate_fails(tmp_path, providers):
    cert, key = certificate(tmp_path, "old", days=-1)
    status, checks = doctor_json({"OPENAI_API_URL": providers["up"].url + "/v1", "OPENAI_API_KEY": OPENAI_KEY,
                                  "SERVER_TLS_CERT_PATH": cert, "SERVER_TLS_KEY_PATH": key})
    assert status == 1
    assert checks[("tls", cert)]["status"] == "fail"
    assert checks[("tls", cert)]["detail"].startswith("the certificate expired on ")


def test_an_invalid_setting_or_config_file_is_the_masters_one_line_and_exit_2(tmp_path):
    bad = doctor({"CLIENT_TIMEOUT": "banana", "OPENAI_API_KEY": OPENAI_KEY})
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == ("inference-gateway: invalid CLIENT_TIMEOUT='banana': expected a duration such "
                                  "as 30s, 1m30s or 500ms")

    config = tmp_path / "gateway.yaml"
    config.write_text(f"deployments:\n  x:\n    kind: nope\n    api_key: {DEPLOYMENT_KEY}\n")
    broken = doctor({"GATEWAY_CONFIG": str(config)})
    assert broken.returncode == 2 and len(broken.stderr.strip().splitlines()) == 1
    assert broken.stderr.startswith(f"inference-gateway: invalid GATEWAY_CONFIG='{config}': deployments.x.kind")
    assert DEPLOYMENT_KEY not in broken.stderr


def test_nothing_configured_is_warnings_and_what_was_not_checked_says_why():
    run = doctor({"CLIENT_IDLE_CONN_TIMEOUT": "5s", "TELEMETRY_ENABLE": "true"})
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {line.split()[0]: line for line in run.stdout.splitlines()[1:-2]}
    assert list(rows) == ["settings", "provider", "oidc", "redis", "database", "mcp", "tls"]
    assert "AUTH_ENABLE=false on an address beyond loopback" in rows["settings"]
    assert "CLIENT_IDLE_CONN_TIMEOUT is set but ignored" in rows["settings"]
    assert "GET /metrics has no auth and listens on every interface" in rows["settings"]
    assert "no provider is configured" in rows["provider"]
    assert rows["redis"].split()[2:] == ["SKIP", "RATE_LIMIT_STORAGE_URI=memory://"]
    assert rows["tls"].split()[2:] == ["SKIP", "SERVER_TLS_CERT_PATH", "is", "empty"]
    assert run.stdout.splitlines()[-1] == "2 warn, 5 skip"
