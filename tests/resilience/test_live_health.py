"""GET /health/providers (the same numbers from every worker), /health/ready, and the active check."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.resilience.conftest import CHAT, QUICK, chat, completion, write_config
from tests.support.fake_provider import json_reply
from tests.support.gateway_log import access_lines
from tests.support.live_gateway import LiveGateway
from tests.support.polling import wait_for

GATEWAY_KEY = "gw-health-key-0123456789"


def providers_health(gateway: LiveGateway, **headers: str) -> requests.Response:
    return requests.get(gateway.url + "/health/providers", headers={"Connection": "close", **headers}, timeout=10)


def by_id(answer: requests.Response) -> dict[str, dict]:
    return {entry["id"]: entry for entry in answer.json()["data"]}


def pids_of(gateway: LiveGateway, request_ids: list[str]) -> list[int] | None:
    """The worker pid that served each request (from the access lines), once all are written."""
    pids = {entry["request_id"]: entry["pid"] for entry in access_lines(gateway.logs())}
    return [pids[i] for i in request_ids] if all(i in pids for i in request_ids) else None


def test_every_worker_answers_with_the_hosts_numbers(live_gateway, make_fake_provider, tmp_path):
    flaky, steady = make_fake_provider(), make_fake_provider()
    flaky.on("POST", CHAT, json_reply({"error": {"message": "overloaded"}}, 503))
    steady.on("POST", CHAT, json_reply(completion()))
    config = write_config(tmp_path, f"""\
        deployments:
          flaky: {{kind: openai, base_url: "{flaky.url}/v1"}}
          steady: {{kind: openai, base_url: "{steady.url}/v1"}}
        retry: {{attempts: 1}}
        circuit_breaker: {{failures: 1000}}
    """)
    gateway = live_gateway({"GATEWAY_CONFIG": str(config), **QUICK}, workers=2)
    failed, served = 12, 8
    with ThreadPoolExecutor(4) as pool:  # new connections, concurrent: both workers take some
        statuses = list(pool.map(lambda model: chat(gateway.url, model).status_code,
                                 ["flaky/m"] * failed + ["steady/m"] * served))
    assert statuses == [503] * failed + [200] * served

    def full(answer: dict) -> bool:
        health = {entry["id"]: entry for entry in answer["data"]}
        return (answer["workers"] == 2 and health["flaky"]["requests"] == failed
                and health["steady"]["requests"] == served)

    def from_both_workers() -> list[dict] | None:
        """Ten answers in a row with the host's numbers, from both workers (a view is at most ~1 s old)."""
        answers, request_ids = [], []
        for _ in range(10):
            answer = providers_health(gateway)
            if not full(answer.json()):
                return None
            answers.append(answer.json())
            request_ids.append(answer.headers["X-Request-ID"])
        pids = wait_for(lambda: pids_of(gateway, request_ids), 10, "the access lines")
        return answers if len(set(pids)) == 2 else None

    answers = wait_for(from_both_workers, 20, "both workers answering with every worker's numbers")
    for answer in answers:
        health = {entry["id"]: entry for entry in answer["data"]}
        assert (health["flaky"]["state"], health["flaky"]["failures"], health["flaky"]["error_rate"]) == (
            "down", failed, 1.0)
        assert health["flaky"]["last_error"]["status"] == 503 and health["flaky"]["circuit"] == "closed"
        assert (health["steady"]["state"], health["steady"]["error_rate"]) == ("up", 0)
        assert health["steady"]["latency_p50_ms"] > 0 and health["steady"]["last_error"] is None
        assert health["steady"]["in_flight"] == 0
    assert all(answer["data"] == answers[0]["data"] for answer in answers)  # the same numbers, whoever answers


def test_ready_is_public_and_says_503_while_nothing_is_usable(live_gateway, fake_provider, tmp_path):
    fake_provider.on("POST", CHAT, json_reply({"error": {"message": "down"}}, 503))
    config = write_config(tmp_path, f"""\
        deployments:
          solo: {{kind: openai, base_url: "{fake_provider.url}/v1"}}
        retry: {{attempts: 1}}
        circuit_breaker: {{failures: 1, cooldown: 2s}}
    """)
    gateway = live_gateway({"GATEWAY_CONFIG": str(config), "AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": "",
                            "AUTH_API_KEYS": GATEWAY_KEY, **QUICK})
    auth = {"Authorization": f"Bearer {GATEWAY_KEY}"}
    assert providers_health(gateway).status_code == 401  # the detail needs a credential
    assert by_id(providers_health(gateway, **auth))["solo"]["state"] == "unknown"
    ready = requests.get(gateway.url + "/health/ready", timeout=10)
    assert ready.status_code == 200 and ready.json() == {"message": "OK"}  # nothing tried yet: usable

    failed = requests.post(gateway.url + CHAT, json={"model": "solo/m", "messages": [{"role": "user", "content": "x"}]},
                           headers=auth, timeout=10)
    assert failed.status_code == 503 and failed.json() == {"error": {"message": "down"}}

    def refused() -> str | None:
        answer = requests.get(gateway.url + "/health/ready", timeout=10)
        return answer.text if answer.status_code == 503 else None

    not_ready = wait_for(refused, 10, "/health/ready to say 503")
    assert json.loads(not_ready)["error"]["code"] == "not_ready"
    assert "solo" not in not_ready and "down" not in not_ready  # ok / not ok, nothing more
    assert by_id(providers_health(gateway, **auth))["solo"]["state"] == "circuit_open"
    # after the cooldown the deployment is worth a try again: ready, so traffic can find out
    wait_for(lambda: requests.get(gateway.url + "/health/ready", timeout=10).status_code == 200, 15,
             "/health/ready after the cooldown")


def test_no_provider_configured_is_not_ready(live_gateway):
    gateway = live_gateway({"SERVER_WRITE_TIMEOUT": "1s"})
    assert requests.get(gateway.url + "/health/ready", timeout=10).status_code == 503
    assert requests.get(gateway.url + "/health", timeout=10).status_code == 200  # liveness is not readiness
    assert providers_health(gateway).json()["data"] == []  # Ollama at its catalog default is not shown


def test_the_active_check_lists_models_and_reports_what_it_found(live_gateway, fake_provider, tmp_path):
    fake_provider.on("GET", "/v1/models", json_reply({"object": "list", "data": [{"id": "m"}]}))
    config = write_config(tmp_path, f"""\
        deployments:
          checked: {{kind: openai, base_url: "{fake_provider.url}/v1", api_key: sk-checked}}
    """)
    gateway = live_gateway({"GATEWAY_CONFIG": str(config), "HEALTH_CHECK_INTERVAL": "1s", **QUICK}, workers=2)

    def checked(ok: bool):
        def look() -> dict | None:
            entry = by_id(providers_health(gateway))["checked"]
            check = entry["last_check"]
            return entry if check and check["ok"] is ok else None
        return look

    entry = wait_for(checked(True), 15, "a successful active check")
    assert entry["state"] == "up" and entry["last_check"]["latency_ms"] >= 0 and entry["requests"] == 0
    seen = [r for r in fake_provider.requests if r.path == "/v1/models"]
    assert seen and seen[0].headers["authorization"] == "Bearer sk-checked"
    fake_provider.on("GET", "/v1/models", json_reply({"error": {"message": "broken"}}, 500))
    entry = wait_for(checked(False), 15, "a failed active check")
    assert entry["state"] == "down" and entry["last_check"]["error"]
    assert chat(gateway.url, "checked/m").status_code == 404  # the check never opened a circuit


def test_ready_is_never_limited_and_the_detail_is(make_app):
    app = make_app({"RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_DEFAULT": "2/minute", "OPENAI_API_KEY": "sk-a",
                    "RATE_LIMIT_KEY_PREFIX": f"test-{os.getpid()}-{time.monotonic_ns()}"})
    client = app.test_client()
    assert {client.get("/health/ready").status_code for _ in range(5)} == {200}
    assert [client.get("/health/providers").status_code for _ in range(3)] == [200, 200, 429]
    assert app.extensions["gateway.health"].snapshot()["data"][0]["id"] == "openai"  # what the console calls
