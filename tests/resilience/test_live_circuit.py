"""Circuit breakers and the retry budget through the real gateway, counted at the fake provider
and in /metrics: a dead deployment is skipped within N failures and comes back after the
cooldown; under a total outage the upstream requests stay within the budget."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.resilience.conftest import CHAT, QUICK, calls_to, chat, completion, write_config
from tests.support.fake_provider import json_reply
from tests.support.live_gateway import free_port
from tests.support.polling import wait_for

FAILURES = 3


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def metric(port: int, name: str, **labels: str) -> float:
    return scrape(port).get((name, frozenset(labels.items())), 0.0)


def test_an_open_circuit_skips_a_dead_deployment_and_recovers_after_the_cooldown(live_gateway, make_fake_provider,
                                                                                   tmp_path):
    dead, alive = make_fake_provider(), make_fake_provider()
    dead.on("POST", CHAT, json_reply({"error": {"message": "down"}}, 503))
    alive.on("POST", CHAT, json_reply(completion("alive")))
    config = write_config(tmp_path, f"""\
        deployments:
          dead: {{kind: openai, base_url: "{dead.url}/v1"}}
          alive: {{kind: openai, base_url: "{alive.url}/v1"}}
        aliases:
          pair: {{targets: [dead/m, alive/m]}}
        retry: {{attempts: 1}}
        circuit_breaker: {{failures: {FAILURES}, cooldown: 2s}}
    """)
    metrics_port = free_port()
    gateway = live_gateway({"GATEWAY_CONFIG": str(config), "TELEMETRY_ENABLE": "true",
                            "TELEMETRY_METRICS_PORT": str(metrics_port), **QUICK})

    for _ in range(FAILURES):  # each request fails on dead, then falls back
        answer = chat(gateway.url, "pair")
        assert answer.headers["X-Gateway-Upstream"] == "alive/m" and answer.headers["X-Gateway-Attempts"] == "2"
    assert len(calls_to(dead)) == FAILURES
    for _ in range(5):  # the circuit is open: dead is not called at all
        answer = chat(gateway.url, "pair")
        assert answer.headers["X-Gateway-Upstream"] == "alive/m" and answer.headers["X-Gateway-Attempts"] == "1"
    assert len(calls_to(dead)) == FAILURES
    direct = chat(gateway.url, "dead/m")  # no other target: refused at once, no upstream call
    assert direct.status_code == 503 and direct.json()["error"]["code"] == "circuit_open"
    assert 1 <= int(direct.headers["Retry-After"]) <= 2 and direct.headers["X-Gateway-Attempts"] == "0"
    health = {d["id"]: d for d in requests.get(gateway.url + "/health/providers", timeout=5).json()["data"]}
    assert health["dead"]["state"] == "circuit_open" and health["dead"]["last_error"]["status"] == 503
    assert health["alive"]["state"] == "up"

    dead.on("POST", CHAT, json_reply(completion("back")))  # the deployment recovers
    wait_for(lambda: chat(gateway.url, "pair").headers["X-Gateway-Upstream"] == "dead/m", 20,
             "a trial request after the cooldown")
    assert len(calls_to(dead)) == FAILURES + 1  # one trial, and it closed the circuit
    assert all(chat(gateway.url, "pair").headers["X-Gateway-Upstream"] == "dead/m" for _ in range(3))

    def counted() -> bool:
        return metric(metrics_port, "llm_circuit_transitions_total", deployment="dead", state="closed") == 1
    wait_for(counted, 10, "the circuit transitions in /metrics")
    assert metric(metrics_port, "llm_circuit_transitions_total", deployment="dead", state="open") == 1
    assert metric(metrics_port, "llm_circuit_transitions_total", deployment="dead", state="half_open") == 1
    assert metric(metrics_port, "llm_upstream_fallbacks_total", deployment="dead", to="alive") == FAILURES


def test_the_retry_budget_holds_under_a_total_outage(live_gateway, fake_provider, tmp_path):
    fake_provider.on("POST", CHAT, json_reply({"error": {"message": "down"}}, 503))
    config = write_config(tmp_path, f"""\
        deployments:
          down: {{kind: openai, base_url: "{fake_provider.url}/v1"}}
        retry: {{attempts: 3, backoff: 1ms, max_backoff: 1ms}}
        circuit_breaker: {{failures: 100000}}
    """)
    metrics_port = free_port()
    gateway = live_gateway({"GATEWAY_CONFIG": str(config), "TELEMETRY_ENABLE": "true",
                            "TELEMETRY_METRICS_PORT": str(metrics_port), **QUICK})
    requests_made = 40
    for _ in range(requests_made):
        assert chat(gateway.url, "down/m").status_code == 503
    upstream = len(calls_to(fake_provider))
    # 3 tries each would be 120; the budget allows 10 a minute plus 20% of the first tries
    assert requests_made + 10 <= upstream <= requests_made + 10 + requests_made * 0.2 + 1, upstream
    wait_for(lambda: metric(metrics_port, "llm_retry_budget_exhausted_total", deployment="down") > 0, 10,
             "the budget refusals in /metrics")
    retried = metric(metrics_port, "llm_upstream_retries_total", deployment="down")
    assert retried == upstream - requests_made
