"""Guessing keys costs time (issue 20, item 4): failed authentications are limited per client
address (AUTH_FAILURE_LIMIT), 429 with Retry-After past the limit, counted in Redis so two
workers share one count, with RATE_LIMIT_ENABLE off. A correct key from a blocked address is
refused too; a credential with a non-ASCII space around it is not the key (item 9). Through the
real gunicorn gateway; each test speaks for its own client address (X-Forwarded-For from the
trusted 127.0.0.1)."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.support.gateway_log import access_lines
from tests.support.live_gateway import GatewayLauncher
from tests.support.polling import wait_for

GOOD = "good-key-0123456789"
LIMIT = 5


@pytest.fixture(scope="module")
def gateway(shared_fake, tmp_path_factory):
    launcher = GatewayLauncher(tmp_path_factory.mktemp("key-guessing"))
    yield launcher({"OPENAI_API_URL": shared_fake.url + "/v1", "OPENAI_API_KEY": "sk-openai",
                    "AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": "", "AUTH_API_KEYS": GOOD,
                    "AUTH_FAILURE_LIMIT": f"{LIMIT}/minute", "RATE_LIMIT_ENABLE": "false",
                    "RATE_LIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0",
                    "RATE_LIMIT_KEY_PREFIX": f"hardening-{uuid.uuid4().hex}", "TRUSTED_PROXIES": "127.0.0.1"},
                   workers=2)
    launcher.stop_all()


def call(gateway, address: str, key: str | None = None, header: str = "Authorization") -> requests.Response:
    headers = {"X-Forwarded-For": address, "Connection": "close"}  # a new connection: either worker
    if key is not None:
        headers[header] = f"Bearer {key}" if header == "Authorization" else key
    return requests.get(gateway.url + "/v1/models?provider=openai", headers=headers, timeout=10)


def test_failures_past_the_limit_are_429_with_retry_after_even_for_the_right_key(gateway, fake):
    address = "203.0.113.10"
    for n in range(LIMIT):
        assert call(gateway, address, f"wrong-{n}").status_code == 401
    refused = call(gateway, address, "wrong-again")
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "auth_failures_exceeded"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert call(gateway, address, GOOD).status_code == 429  # no oracle: right and wrong look the same
    assert call(gateway, address, GOOD, header="X-Api-Key").status_code == 429
    assert call(gateway, "203.0.113.11", GOOD).status_code != 401  # another address is not affected


def test_requests_without_a_credential_are_not_counted(gateway, fake):
    address = "203.0.113.20"
    for _ in range(3 * LIMIT):
        assert call(gateway, address).status_code == 401
    assert call(gateway, address, GOOD).status_code != 429


def pids_of(gateway, request_ids: set[str]) -> set[int]:
    return {line["pid"] for line in access_lines(gateway.logs()) if line.get("request_id") in request_ids}


def test_the_count_is_shared_by_the_workers(gateway, fake):
    address = "203.0.113.30"
    for n in range(LIMIT):
        assert call(gateway, address, f"wrong-{n}").status_code == 401
    # every guess after that is refused, whichever worker takes it: until both have answered
    answered: set[str] = set()
    for n in range(100):
        answer = call(gateway, address, f"more-{n}")
        assert answer.status_code == 429
        answered.add(answer.headers["X-Request-ID"])
        if n % 5 == 4 and len(wait_for(lambda: pids_of(gateway, answered), 10, "the access lines")) == 2:
            break
    assert len(pids_of(gateway, answered)) == 2


@pytest.mark.parametrize("credential", ["Bearer " + GOOD + "\xa0", "Bearer \xa0" + GOOD, "Bearer " + GOOD + "\x85"])
def test_a_key_with_a_non_ascii_space_around_it_is_not_the_key(gateway, fake, credential):
    answer = requests.get(gateway.url + "/v1/models?provider=openai", timeout=10,
                          headers={"Authorization": credential, "X-Forwarded-For": "203.0.113.40"})
    assert answer.status_code == 401
    assert call(gateway, "203.0.113.41", GOOD).status_code != 401  # the key itself, with ASCII spaces, passes
    spaced = requests.get(gateway.url + "/v1/models?provider=openai", timeout=10,
                          headers={"Authorization": f"Bearer  {GOOD} \t", "X-Forwarded-For": "203.0.113.41"})
    assert spaced.status_code != 401
