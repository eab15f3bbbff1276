"""GET /v1/models on the real gunicorn + gevent gateway, against local fake providers over HTTP."""

from __future__ import annotations

import json
import socket
import threading
import time

import requests

from tests.support.fake_provider import Recorded, Reply, json_reply

FAILED = "X-Gateway-Providers-Failed"
OPENAI_KEY = "sk-live-openai-5f1c9e"
ANTHROPIC_KEY = "sk-ant-live-77d0a2"
COHERE_KEY = "co-live-31b8e4"
GROQ_KEY = "gsk-live-groq-0c9d"
MISTRAL_KEY = "mistral-live-a41f"


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # nothing listens once closed


def openai_list(*ids: str) -> dict:
    return {"object": "list", "data": [{"id": i, "object": "model", "created": 1715367049, "owned_by": "system"}
                                      for i in ids]}


def anthropic_pages(request: Recorded) -> Reply:
    """Two pages, like Anthropic's /v1/models with a small limit."""
    if dict(request.query).get("after_id") == "claude-sonnet-4-20250514":
        return json_reply({"data": [{"type": "model", "id": "claude-3-5-haiku-20241022",
                                     "display_name": "Claude Haiku 3.5", "created_at": "2024-10-22T00:00:00Z"}],
                           "has_more": False, "first_id": "claude-3-5-haiku-20241022",
                           "last_id": "claude-3-5-haiku-20241022"})
    return json_reply({"data": [{"type": "model", "id": "claude-opus-4-20250514", "display_name": "Claude Opus 4",
                                 "created_at": "2025-05-22T00:00:00Z"},
                                {"type": "model", "id": "claude-sonnet-4-20250514", "display_name": "Claude Sonnet 4",
                                 "created_at": "2025-05-22T00:00:00Z"}],
                       "has_more": True, "first_id": "claude-opus-4-20250514", "last_id": "claude-sonnet-4-20250514"})


def cohere_pages(request: Recorded) -> Reply:
    if dict(request.query).get("page_token") == "eyJvZmZzZXQiOjF9":
        return json_reply({"models": [{"name": "command-r7b-12-2024", "endpoints": ["chat"], "finetuned": False,
                                       "context_length": 132000}]})
    return json_reply({"models": [{"name": "command-a-03-2025", "endpoints": ["chat"], "finetuned": False,
                                   "context_length": 256000}], "next_page_token": "eyJvZmZzZXQiOjF9"})


def get(url: str, **kwargs) -> requests.Response:
    return requests.get(url, headers={"Connection": "close"}, timeout=30, **kwargs)


def test_one_down_one_slow_dns_failing_the_rest_listed_with_paging_and_keys_kept(live_gateway, make_fake_provider):
    openai, anthropic, cohere, slow = (make_fake_provider() for _ in range(4))
    openai.on("GET", "/v1/models", json_reply(openai_list("gpt-4o", "gpt-4o-mini")))
    anthropic.on("GET", "/v1/models", anthropic_pages)
    cohere.on("GET", "/v1/models", cohere_pages)
    slow.on("GET", "/v1/models", json_reply(openai_list("mistral-large-latest"), hang=8))
    gateway = live_gateway({
        "CLIENT_TIMEOUT": "1s",
        "OPENAI_API_URL": openai.url + "/v1", "OPENAI_API_KEY": OPENAI_KEY,
        "ANTHROPIC_API_URL": anthropic.url + "/v1", "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "COHERE_API_URL": cohere.url, "COHERE_API_KEY": COHERE_KEY,
        "GROQ_API_URL": closed_port_url(), "GROQ_API_KEY": GROQ_KEY,
        "MISTRAL_API_URL": slow.url + "/v1", "MISTRAL_API_KEY": MISTRAL_KEY,
        "OLLAMA_API_URL": "http://ollama:8080/v1",  # a name that does not resolve here
    })

    started = time.monotonic()
    response = get(gateway.url + "/v1/models")
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert set(response.headers[FAILED].split(",")) == {"ollama", "groq", "mistral"}
    assert [m["id"] for m in response.json()["data"]] == [
        "openai/gpt-4o", "openai/gpt-4o-mini",
        "cohere/command-a-03-2025", "cohere/command-r7b-12-2024",
        "anthropic/claude-opus-4-20250514", "anthropic/claude-sonnet-4-20250514",
        "anthropic/claude-3-5-haiku-20241022",
    ]
    assert all(set(m) == {"id", "object", "created", "owned_by", "served_by"} for m in response.json()["data"])
    # bounded by the slow provider's 1 s timeout, not its 8 s hang; DNS failure did not stall it
    assert elapsed < 5, elapsed

    # each key reached its provider in that provider's auth style ...
    assert {r.headers.get("authorization") for r in openai.requests} == {f"Bearer {OPENAI_KEY}"}
    assert {r.headers.get("x-api-key") for r in anthropic.requests} == {ANTHROPIC_KEY}
    assert len(anthropic.requests) == 2 and len(cohere.requests) == 2  # both pages of both
    assert {r.headers.get("authorization") for r in cohere.requests} == {f"Bearer {COHERE_KEY}"}
    # ... and never came back to the client or into the logs
    gateway.stop()
    logs = gateway.logs()
    exposed = response.text + json.dumps(dict(response.headers)) + logs
    for key in (OPENAI_KEY, ANTHROPIC_KEY, COHERE_KEY, GROQ_KEY, MISTRAL_KEY):
        assert key not in exposed
    # the log says who was left out and why
    reasons = {entry["provider"]: entry["message"] for entry in map(json.loads, filter(None, logs.splitlines()))
               if entry.get("logger") == "gateway.models"}
    assert set(reasons) == {"ollama", "groq", "mistral"}
    assert "could not be reached" in reasons["groq"] and "could not be reached" in reasons["ollama"]
    assert "did not answer in time" in reasons["mistral"]


def test_one_provider_failing_answers_502_504_or_its_own_error(live_gateway, make_fake_provider):
    slow, refusing = make_fake_provider(), make_fake_provider()
    slow.on("GET", "/v1/models", json_reply(openai_list("x"), hang=6))
    refusing.on("GET", "/v1/models", json_reply({"error": {"message": "Rate limit reached", "type": "rate_limit"}},
                                                 status=429, headers={"Retry-After": "7"}))
    gateway = live_gateway({
        "CLIENT_TIMEOUT": "1s",
        "GROQ_API_URL": closed_port_url(), "GROQ_API_KEY": GROQ_KEY,
        "MISTRAL_API_URL": slow.url + "/v1", "MISTRAL_API_KEY": MISTRAL_KEY,
        "OPENAI_API_URL": refusing.url + "/v1", "OPENAI_API_KEY": OPENAI_KEY,
    })
    down = get(gateway.url + "/v1/models?provider=groq")
    assert down.status_code == 502 and down.json()["error"]["type"] == "upstream_unreachable"
    late = get(gateway.url + "/v1/models?provider=mistral")
    assert late.status_code == 504 and late.json()["error"]["type"] == "upstream_timeout"
    own = get(gateway.url + "/v1/models?provider=openai")
    assert own.status_code == 429
    assert own.json() == {"error": {"message": "Rate limit reached", "type": "rate_limit"}}
    unknown = get(gateway.url + "/v1/models?provider=acme")
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "unknown_provider"
    unset = get(gateway.url + "/v1/models?provider=deepseek")
    assert unset.status_code == 400 and "DEEPSEEK_API_KEY" in unset.json()["error"]["message"]
    for answer in (down, late, own):
        assert GROQ_KEY not in answer.text and MISTRAL_KEY not in answer.text and OPENAI_KEY not in answer.text


def test_all_providers_are_asked_at_once(live_gateway, make_fake_provider):
    providers = ("openai", "groq", "mistral", "deepseek")
    all_asked = threading.Barrier(len(providers))  # each answers only once all four were asked

    def answer_when_all_asked(pid: str):
        def answer(request: Recorded) -> Reply:
            try:
                all_asked.wait(timeout=5)
            except threading.BrokenBarrierError:
                return json_reply({"error": {"message": "asked alone"}}, status=500)
            return json_reply(openai_list(f"{pid}-model"))
        return answer

    env = {"OLLAMA_API_URL": closed_port_url()}
    for pid in providers:
        fake = make_fake_provider()
        fake.on("GET", "*", answer_when_all_asked(pid))
        env |= {f"{pid.upper()}_API_URL": fake.url + "/v1", f"{pid.upper()}_API_KEY": "k"}
    gateway = live_gateway(env)
    response = get(gateway.url + "/v1/models")
    assert response.status_code == 200
    assert sorted(m["id"] for m in response.json()["data"]) == sorted(f"{p}/{p}-model" for p in providers)


def test_lists_are_cached_for_the_ttl_and_not_at_all_with_ttl_zero(live_gateway, make_fake_provider):
    cached, uncached = make_fake_provider(), make_fake_provider()
    for fake in (cached, uncached):
        fake.on("GET", "/v1/models", json_reply(openai_list("gpt-4o")))
    base = {"OPENAI_API_KEY": OPENAI_KEY, "OLLAMA_API_URL": closed_port_url()}
    with_cache = live_gateway({**base, "OPENAI_API_URL": cached.url + "/v1"})  # MODELS_CACHE_TTL defaults to 60s
    without = live_gateway({**base, "OPENAI_API_URL": uncached.url + "/v1", "MODELS_CACHE_TTL": "0"})
    for gateway in (with_cache, without):
        for path in ("/v1/models", "/v1/models", "/v1/models?provider=openai"):
            response = get(gateway.url + path)
            assert response.status_code == 200 and response.json()["data"][0]["id"] == "openai/gpt-4o"
    assert len(cached.requests) == 1
    assert len(uncached.requests) == 3


def test_a_failed_fetch_is_not_cached(live_gateway, make_fake_provider):
    fake = make_fake_provider()
    answers = iter([json_reply({"error": {"message": "upstream hiccup"}}, status=503),
                    json_reply(openai_list("gpt-4o"))])
    fake.on("GET", "/v1/models", lambda request: next(answers, json_reply(openai_list("gpt-4o"))))
    gateway = live_gateway({"OPENAI_API_URL": fake.url + "/v1", "OPENAI_API_KEY": OPENAI_KEY,
                            "OLLAMA_API_URL": closed_port_url()})
    first = get(gateway.url + "/v1/models")
    assert first.status_code == 200 and first.json()["data"] == []
    assert first.headers[FAILED] == "ollama,openai"
    second = get(gateway.url + "/v1/models")
    assert [m["id"] for m in second.json()["data"]] == ["openai/gpt-4o"]
    assert second.headers[FAILED] == "ollama"
    assert len(fake.requests) == 2


def test_allow_and_deny_lists_filter_the_live_list(live_gateway, make_fake_provider):
    openai, anthropic = make_fake_provider(), make_fake_provider()
    openai.on("GET", "/v1/models", json_reply(openai_list("gpt-4o", "gpt-4o-mini", "o3")))
    anthropic.on("GET", "/v1/models", anthropic_pages)
    providers = {"OPENAI_API_URL": openai.url + "/v1", "OPENAI_API_KEY": OPENAI_KEY,
                 "ANTHROPIC_API_URL": anthropic.url + "/v1", "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
                 "OLLAMA_API_URL": closed_port_url()}
    allowing = live_gateway({**providers, "ALLOWED_MODELS": "gpt-4o, Anthropic/claude-3-5-haiku-20241022",
                             "DISALLOWED_MODELS": "gpt-4o"})
    denying = live_gateway({**providers, "DISALLOWED_MODELS": "o3,anthropic/claude-opus-4-20250514"})

    def ids(gateway, query=""):
        return [m["id"] for m in get(gateway.url + "/v1/models" + query).json()["data"]]

    assert ids(allowing) == ["openai/gpt-4o", "anthropic/claude-3-5-haiku-20241022"]
    assert ids(allowing, "?provider=anthropic") == ["anthropic/claude-3-5-haiku-20241022"]
    assert ids(denying) == ["openai/gpt-4o", "openai/gpt-4o-mini", "anthropic/claude-sonnet-4-20250514",
                            "anthropic/claude-3-5-haiku-20241022"]


def test_a_provider_trickling_its_list_is_given_up_on_after_its_budget(live_gateway, make_fake_provider):
    trickle, fast = make_fake_provider(), make_fake_provider()
    # every gap is under CLIENT_TIMEOUT, so no single read times out, but the whole takes ~21 s
    body = json.dumps(openai_list("mistral-large-latest")).encode()
    trickle.on("GET", "/v1/models", Reply(headers={"Content-Type": "application/json"},
                                          chunks=[body[i:i + 3] for i in range(0, 87, 3)] + [body[87:]], delay=0.7))
    fast.on("GET", "/v1/models", json_reply(openai_list("gpt-4o")))
    gateway = live_gateway({"CLIENT_TIMEOUT": "1s", "CLIENT_RESPONSE_HEADER_TIMEOUT": "1s",
                            "OLLAMA_API_URL": closed_port_url(), "MISTRAL_API_URL": trickle.url + "/v1", "MISTRAL_API_KEY": MISTRAL_KEY,
                            "OPENAI_API_URL": fast.url + "/v1", "OPENAI_API_KEY": OPENAI_KEY})
    started = time.monotonic()
    response = get(gateway.url + "/v1/models")
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert [m["id"] for m in response.json()["data"]] == ["openai/gpt-4o"]
    assert response.headers[FAILED] == "ollama,mistral"
    assert elapsed < 15, elapsed  # the headers' bound + CLIENT_TIMEOUT + 1 s slack = a 3 s budget, not ~21 s
    gateway.stop()
    assert "left mistral out of the model list: no complete answer within 3s" in gateway.logs()
