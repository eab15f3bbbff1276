"""One gateway for the API tests of a module, with fake OpenAI, Anthropic and Groq providers.

Auth is on (the gateway key is GATEWAY_KEY, accepted as a bearer token or `x-api-key`), the
accounts are on (a SQLite ledger; the access line then carries each request's usage), images are
refused (ENABLE_VISION=false), `openai/forbidden` and `claude-forbidden` are denied. Mistral is
configured and offers none of the new endpoints but transcriptions and moderations.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.support.fake_provider import FakeProvider
from tests.support.live_gateway import GatewayLauncher, LiveGateway

GATEWAY_KEY = "gw-api-tests-0123456789abcdef"
ADMIN_KEY = "admin-api-tests-0123456789abcdef"
PROVIDER_KEYS = {"openai": "sk-openai-provider-secret", "anthropic": "sk-ant-provider-secret",
                 "groq": "gsk-groq-provider-secret", "mistral": "mistral-provider-secret"}


class Fakes:
    def __init__(self) -> None:
        self.openai = FakeProvider().start()
        self.anthropic = FakeProvider().start()
        self.groq = FakeProvider().start()
        self.mistral = FakeProvider().start()

    def all(self) -> list[FakeProvider]:
        return [self.openai, self.anthropic, self.groq, self.mistral]

    def reset(self) -> Fakes:
        for fake in self.all():
            fake.reset()
        return self

    def stop(self) -> None:
        for fake in self.all():
            fake.stop()


def gateway_env(fakes: Fakes, database: str, **extra: str) -> dict[str, str]:
    return {
        "AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": "", "AUTH_API_KEYS": GATEWAY_KEY,
        "ACCOUNTS_ENABLE": "true", "DATABASE_URL": f"sqlite:///{database}", "ADMIN_API_KEY": ADMIN_KEY,
        "USAGE_FLUSH_INTERVAL": "0.2s",
        "OPENAI_API_URL": fakes.openai.url + "/v1", "OPENAI_API_KEY": PROVIDER_KEYS["openai"],
        "ANTHROPIC_API_URL": fakes.anthropic.url + "/v1", "ANTHROPIC_API_KEY": PROVIDER_KEYS["anthropic"],
        "GROQ_API_URL": fakes.groq.url + "/openai/v1", "GROQ_API_KEY": PROVIDER_KEYS["groq"],
        "MISTRAL_API_URL": fakes.mistral.url + "/v1", "MISTRAL_API_KEY": PROVIDER_KEYS["mistral"],
        "DISALLOWED_MODELS": "openai/forbidden,claude-forbidden", "ENABLE_VISION": "false",
        "CLIENT_TIMEOUT": "3s", "SERVER_WRITE_TIMEOUT": "1s", **extra,
    }


@pytest.fixture(scope="module")
def shared_fakes() -> Iterator[Fakes]:
    fakes = Fakes()
    yield fakes
    fakes.stop()


@pytest.fixture(scope="module")
def gateway(shared_fakes: Fakes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    directory = tmp_path_factory.mktemp("api-gateway")
    launcher = GatewayLauncher(directory)
    yield launcher(gateway_env(shared_fakes, str(directory / "ledger.db")))
    launcher.stop_all()


@pytest.fixture
def fakes(shared_fakes: Fakes) -> Fakes:
    """The module's fakes, with no routes and no recorded requests."""
    return shared_fakes.reset()


def request_id() -> str:
    return uuid.uuid4().hex


def access_line(gateway: LiveGateway, rid: str, timeout: float = 20) -> dict:
    """The access line of request `rid` (written as its response closes)."""
    deadline = time.monotonic() + timeout
    while True:
        for line in gateway.logs().splitlines():
            if rid in line and '"gateway.access"' in line:
                return json.loads(line)
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no access line for {rid}"
        gateway.wait_for_log(rid, timeout=remaining)


def ledger_rows(gateway: LiveGateway, rid: str, timeout: float = 20) -> list[dict]:
    """The usage ledger's rows for request `rid`, once written (the batch writer flushes every 0.2 s)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = requests.get(gateway.url + "/admin/usage", params={"limit": 10000}, timeout=10,
                              headers={"Authorization": f"Bearer {ADMIN_KEY}", "Connection": "close"})
        assert answer.status_code == 200, answer.text
        rows = [row for row in answer.json()["data"] if row.get("request_id") == rid]
        if rows:
            return rows
        assert time.monotonic() < deadline, f"no ledger row for {rid}"
        time.sleep(0.1)
