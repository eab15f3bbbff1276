"""Aliases through the real gateway: fallback (also for a stream before its first event), round
robin, least busy, the allow/deny lists, and GET /v1/models. Two fake providers play `openai`
(the catalog provider, from the environment) and `openai-b` (a deployment of the file)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from tests.resilience.conftest import CHAT, QUICK, USER, calls_to, chat, chunk, completion, write_config
from tests.support.fake_provider import FakeProvider, Reply, json_reply, sse_event, sse_reply
from tests.support.gateway_log import access_lines
from tests.support.live_gateway import GatewayLauncher, LiveGateway
from tests.support.polling import wait_for
from tests.support.refused import refusing_port

SSE = {"Content-Type": "text/event-stream"}


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeProvider, FakeProvider]]:
    a, b = FakeProvider().start(), FakeProvider().start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(scope="module")
def gateway(fakes, tmp_path_factory) -> Iterator[LiveGateway]:
    a, b = fakes
    directory = tmp_path_factory.mktemp("aliases")
    with refusing_port() as nobody:
        config = write_config(directory, f"""\
            deployments:
              openai-b:
                kind: openai
                base_url: {b.url}/v1
                api_key: ${{OPENAI_API_KEY_B}}
                headers: {{X-Deployment: b}}
              dead:
                kind: openai
                base_url: http://127.0.0.1:{nobody}/v1
            aliases:
              fast: {{strategy: fallback, targets: [openai/gpt-4o-mini, openai-b/gpt-4o-mini]}}
              spread: {{strategy: round_robin, targets: [openai/m, openai-b/m]}}
              busy: {{strategy: least_busy, targets: [openai/m, openai-b/m]}}
              rescue: {{targets: [dead/m, openai-b/m]}}
              half-denied: {{targets: [openai/forbidden, openai-b/m]}}
              all-denied: {{targets: [openai/forbidden]}}
              hidden: {{targets: [openai/m]}}
              openai/gpt-4o: {{targets: [openai-b/gpt-4o]}}
            retry: {{attempts: 2, backoff: 1ms, budget_min: 1000}}
            circuit_breaker: {{failures: 1000, cooldown: 30s}}
        """)
        launcher = GatewayLauncher(directory)
        yield launcher({"OPENAI_API_URL": a.url + "/v1", "OPENAI_API_KEY": "sk-a", "OPENAI_API_KEY_B": "sk-b",
                        "GATEWAY_CONFIG": str(config), "DISALLOWED_MODELS": "openai/forbidden,hidden", **QUICK})
        launcher.stop_all()


@pytest.fixture
def a(fakes) -> FakeProvider:
    return fakes[0].reset()


@pytest.fixture
def b(fakes) -> FakeProvider:
    return fakes[1].reset()


def test_an_alias_falls_back_to_its_second_target_when_the_first_is_down(gateway, a, b):
    a.on("POST", CHAT, json_reply({"error": {"message": "down"}}, 503))
    b.on("POST", CHAT, json_reply(completion("from b")))
    answer = chat(gateway.url, "fast")
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] == "from b"
    assert answer.headers["X-Gateway-Upstream"] == "openai-b/gpt-4o-mini"
    assert answer.headers["X-Gateway-Attempts"] == "3"  # two tries on openai, then openai-b
    [seen] = calls_to(b)
    assert seen.json()["model"] == "gpt-4o-mini"
    assert seen.headers["authorization"] == "Bearer sk-b" and seen.headers["x-deployment"] == "b"
    assert len(calls_to(a)) == 2


def test_an_alias_falls_back_for_a_stream_that_fails_before_its_first_event(gateway, a, b):
    a.on("POST", CHAT, Reply(headers=SSE, chunks=[b": processing\n\n"], cut=True))
    b.on("POST", CHAT, sse_reply([chunk("b1"), chunk("b2")]))
    answer = chat(gateway.url, "fast", stream=True)
    assert answer.status_code == 200 and answer.headers["X-Gateway-Upstream"] == "openai-b/gpt-4o-mini"
    assert '"b1"' in answer.text and '"b2"' in answer.text and answer.text.endswith("data: [DONE]\n\n")
    assert '"error"' not in answer.text


def test_an_unreachable_deployment_is_left_for_the_next(gateway, b):
    b.on("POST", CHAT, json_reply(completion("rescued")))
    answer = chat(gateway.url, "rescue")
    assert answer.status_code == 200 and answer.headers["X-Gateway-Upstream"] == "openai-b/m"


def test_the_first_target_serves_while_it_is_up(gateway, a, b):
    a.on("POST", CHAT, json_reply(completion("from a")))
    answer = chat(gateway.url, "fast")
    assert answer.headers["X-Gateway-Upstream"] == "openai/gpt-4o-mini" and answer.headers["X-Gateway-Attempts"] == "1"
    assert calls_to(b) == []


def test_round_robin_spreads_evenly(gateway, a, b):
    a.on("POST", CHAT, json_reply(completion("a")))
    b.on("POST", CHAT, json_reply(completion("b")))
    served = Counter(chat(gateway.url, "spread").headers["X-Gateway-Upstream"] for _ in range(10))
    assert served == {"openai/m": 5, "openai-b/m": 5}
    assert (len(calls_to(a)), len(calls_to(b))) == (5, 5)


def test_least_busy_picks_the_target_with_fewer_requests_in_flight(gateway, a, b):
    gate = threading.Event()
    a.on("POST", CHAT, Reply(headers=SSE, chunks=[sse_event(chunk("held")), b"data: [DONE]\n\n"], pauses=[0, gate]))
    b.on("POST", CHAT, json_reply(completion("b")))
    with requests.post(gateway.url + CHAT, json={"model": "busy", "messages": USER, "stream": True}, stream=True,
                       timeout=20, headers={"Connection": "close"}) as held:
        assert held.headers["X-Gateway-Upstream"] == "openai/m"  # both idle: the configured order
        next(held.iter_lines())  # the stream is open on openai
        answers = [chat(gateway.url, "busy").headers["X-Gateway-Upstream"] for _ in range(3)]
        gate.set()
    assert answers == ["openai-b/m"] * 3


def test_a_denied_target_is_skipped_and_none_left_is_403(gateway, a, b):
    b.on("POST", CHAT, json_reply(completion("b")))
    answer = chat(gateway.url, "half-denied")
    assert answer.status_code == 200 and answer.headers["X-Gateway-Upstream"] == "openai-b/m"
    assert calls_to(a) == []
    refused = chat(gateway.url, "all-denied")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"
    by_name = chat(gateway.url, "hidden")
    assert by_name.status_code == 403 and "hidden" in by_name.json()["error"]["message"]
    assert calls_to(a) == [] and calls_to(b) == [calls_to(b)[0]]


def test_an_alias_can_take_over_a_provider_model_id(gateway, a, b):
    b.on("POST", CHAT, json_reply(completion("b")))
    answer = chat(gateway.url, "openai/gpt-4o")
    assert answer.headers["X-Gateway-Upstream"] == "openai-b/gpt-4o" and calls_to(a) == []
    refused = requests.post(gateway.url + CHAT + "?provider=openai", json={"model": "openai/gpt-4o", "messages": USER},
                            timeout=20)
    assert refused.headers["X-Gateway-Upstream"] == "openai/gpt-4o"  # ?provider= wins over the alias
    bare = chat(gateway.url, "gpt-4o")
    assert bare.status_code == 400 and bare.json()["error"]["code"] == "unknown_provider"  # no guessing


def test_models_lists_aliases_and_deployments(gateway, a, b):
    a.on("GET", "/v1/models", json_reply({"object": "list", "data": [{"id": "gpt-4o-mini", "owned_by": "openai"},
                                                                     {"id": "gpt-4o", "owned_by": "openai"},
                                                                     {"id": "forbidden", "owned_by": "openai"}]}))
    b.on("GET", "/v1/models", json_reply({"object": "list", "data": [{"id": "gpt-4o-mini", "owned_by": "openai"}]}))
    answer = requests.get(gateway.url + "/v1/models", timeout=20)
    assert answer.status_code == 200
    entries = {entry["id"]: entry for entry in answer.json()["data"]}
    for alias in ("fast", "spread", "busy", "rescue", "half-denied", "openai/gpt-4o"):
        assert entries[alias]["owned_by"] == "gateway" and entries[alias]["served_by"] == "gateway"
    assert "all-denied" not in entries and "hidden" not in entries and "openai/forbidden" not in entries
    assert entries["openai/gpt-4o-mini"]["served_by"] == "openai"
    assert entries["openai-b/gpt-4o-mini"]["served_by"] == "openai-b"
    assert "dead" in answer.headers["X-Gateway-Providers-Failed"].split(",")
    one = requests.get(gateway.url + "/v1/models?provider=openai-b", timeout=20).json()
    assert one["provider"] == "openai-b" and [m["id"] for m in one["data"]] == ["openai-b/gpt-4o-mini"]
    assert calls_to(b, "/v1/models")[0].headers["authorization"] == "Bearer sk-b"


def test_the_access_line_names_the_alias_and_who_served(gateway, a, b):
    a.on("POST", CHAT, json_reply({"error": {"message": "down"}}, 502))
    b.on("POST", CHAT, json_reply(completion("b")))
    request_id = chat(gateway.url, "fast").headers["X-Request-ID"]

    def line() -> dict | None:
        return next((entry for entry in access_lines(gateway.logs()) if entry["request_id"] == request_id), None)

    entry = wait_for(line, 10, "the access line")
    assert (entry["alias"], entry["upstream"], entry["provider"], entry["model"], entry["attempts"]) == (
        "fast", "openai-b/gpt-4o-mini", "openai-b", "gpt-4o-mini", 3)
