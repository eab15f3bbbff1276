"""The request observer and the signal receivers, in-process, through the gateway's real routes
(chat completions, the model list, the proxy) against a real local fake provider. The usage and
tool calls counted are the ones the provider reported; the upstream clock runs at the transport."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from app.upstream import transport
from tests.support.fake_provider import json_reply, sse_reply
from tests.support.refused import refusing_port

USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
TIMING = re.compile(r"gateway;dur=(?P<gateway>\d+\.\d), upstream;dur=(?P<upstream>\d+\.\d)")
CHAT = "/v1/chat/completions"
TOOL_CALL = {"id": "1", "type": "function", "function": {"name": "mcp_search", "arguments": "{}"}}


def body(stream: bool = False) -> dict:
    return {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": stream}


def completion(usage=USAGE) -> dict:
    return {"id": "c1", "object": "chat.completion", "usage": usage, "choices": [
        {"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}}]}


def chunk(content: str) -> dict:
    return {"id": "s", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": content}}]}


@pytest.fixture
def gateway_env(fake_provider) -> dict[str, str]:
    return {"TELEMETRY_ENABLE": "true", "OPENAI_API_URL": fake_provider.url + "/v1", "OPENAI_API_KEY": "sk-test"}


@pytest.fixture
def telemetry_app(make_app, gateway_env) -> Flask:
    return make_app(gateway_env)


def sample(app: Flask, name: str, **labels: str) -> float | None:
    return app.extensions["telemetry"].registry.get_sample_value(name, labels)


def test_non_stream_counts_response_and_tokens_and_sends_server_timing(telemetry_app, fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", json_reply(completion(), hang=0.3))
    response = telemetry_app.test_client().post(CHAT, json=body(), buffered=True)
    assert response.status_code == 200

    timing = TIMING.fullmatch(response.headers["Server-Timing"])
    assert timing, response.headers["Server-Timing"]
    assert float(timing["upstream"]) >= 300  # the provider's hang is the provider's time...
    assert float(timing["gateway"]) < float(timing["upstream"])  # ...not the gateway's

    route = {"provider": "openai", "request_method": "POST", "request_path": CHAT}
    assert sample(telemetry_app, "llm_responses_total", **route, status_code="200") == 1
    assert sample(telemetry_app, "llm_request_duration_count", **route) == 1
    assert sample(telemetry_app, "llm_request_duration_sum", **route) >= 300
    model = {"provider": "openai", "model": "gpt-4o"}
    assert sample(telemetry_app, "llm_usage_prompt_tokens_total", **model) == 11
    assert sample(telemetry_app, "llm_usage_completion_tokens_total", **model) == 7
    assert sample(telemetry_app, "llm_usage_total_tokens_total", **model) == 18
    assert sample(telemetry_app, "llm_tool_calls_total", **model, tool_type="mcp", tool_name="mcp_search") == 1
    overhead = sample(telemetry_app, "llm_gateway_overhead_duration_sum", request_method="POST", request_path=CHAT)
    assert overhead is not None and overhead < 300


def test_stream_has_no_server_timing_and_records_time_to_first_token(telemetry_app, fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", sse_reply(
        [chunk("a"), chunk("b"), chunk("c"), {"id": "s", "choices": [], "usage": USAGE}], delay=0.15))
    response = telemetry_app.test_client().post(CHAT, json=body(stream=True), buffered=False)
    assert "Server-Timing" not in response.headers
    streamed = b"".join(response.response)
    response.close()
    assert streamed.count(b"data: ") == 4  # three chunks and [DONE]: the usage chunk was not asked for

    route = {"provider": "openai", "request_method": "POST", "request_path": CHAT}
    assert sample(telemetry_app, "llm_responses_total", **route, status_code="200") == 1
    duration = sample(telemetry_app, "llm_request_duration_sum", **route)
    assert duration >= 600  # the whole stream, not just its headers
    ttft = sample(telemetry_app, "llm_time_to_first_token_sum", provider="openai", model="gpt-4o")
    assert 150 <= ttft < duration
    assert sample(telemetry_app, "llm_time_to_first_token_count", provider="openai", model="gpt-4o") == 1
    # Streamed usage counts like any other, hidden chunk included.
    assert sample(telemetry_app, "llm_usage_total_tokens_total", provider="openai", model="gpt-4o") == 18
    # The waits between events were the provider's.
    overhead = sample(telemetry_app, "llm_gateway_overhead_duration_sum", request_method="POST", request_path=CHAT)
    assert overhead < duration / 3


def test_requests_without_a_provider_count_only_gateway_time(telemetry_app):
    client = telemetry_app.test_client()
    local = client.get("/openapi.yaml", buffered=True)
    assert re.fullmatch(r"gateway;dur=\d+\.\d", local.headers["Server-Timing"])  # no upstream part
    for path in ("/v1/nothing-1", "/v1/nothing-2", "/random/3"):
        assert client.get(path, buffered=True).status_code == 404
    client.get("/health")

    assert sample(telemetry_app, "llm_gateway_overhead_duration_count", request_method="GET",
                  request_path="/openapi.yaml") == 1
    # Unknown paths share one series, so clients cannot create unbounded ones.
    assert sample(telemetry_app, "llm_gateway_overhead_duration_count", request_method="GET",
                  request_path="unmatched") == 3
    assert sample(telemetry_app, "llm_gateway_overhead_duration_count", request_method="GET",
                  request_path="/health") is None
    exposed = [s for m in telemetry_app.extensions["telemetry"].registry.collect() for s in m.samples
               if s.name == "llm_responses_total"]
    assert exposed == []  # like the original: llm_* request metrics only when a provider is known


def test_upstream_failure_is_counted_with_its_status(make_app, gateway_env):
    with refusing_port() as nobody:
        app = make_app({**gateway_env, "OPENAI_API_URL": f"http://127.0.0.1:{nobody}/v1"})
        response = app.test_client().post(CHAT, json=body(), buffered=True)
    assert response.status_code == 502
    assert sample(app, "llm_responses_total", provider="openai", request_method="POST",
                  request_path=CHAT, status_code="502") == 1
    assert sample(app, "llm_usage_total_tokens_total", provider="openai", model="gpt-4o") is None


@pytest.mark.parametrize(("usage", "prompt", "total"), [
    ({"prompt_tokens": 5, "completion_tokens": 2}, 5, 7),  # no total: derived
    ({"prompt_tokens": "many", "completion_tokens": None, "total_tokens": -3}, None, None),  # nothing countable
])
def test_odd_usage_from_a_provider_counts_what_it_can(telemetry_app, fake_provider, usage, prompt, total):
    fake_provider.on("POST", "/v1/chat/completions", json_reply({"id": "c", "choices": [], "usage": usage}))
    assert telemetry_app.test_client().post(CHAT, json=body()).status_code == 200
    labels = {"provider": "openai", "model": "gpt-4o"}
    assert sample(telemetry_app, "llm_usage_prompt_tokens_total", **labels) == prompt
    assert sample(telemetry_app, "llm_usage_total_tokens_total", **labels) == total


def test_an_answer_without_usage_counts_the_gateways_estimate(telemetry_app, fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", json_reply({"id": "c", "choices": [], "usage": None}))
    assert telemetry_app.test_client().post(CHAT, json=body()).status_code == 200
    labels = {"provider": "openai", "model": "gpt-4o"}
    assert sample(telemetry_app, "llm_usage_prompt_tokens_total", **labels) >= 1  # issue 20: estimated


def test_usage_of_another_app_is_not_counted(telemetry_app, make_app, gateway_env, fake_provider):
    other = make_app(gateway_env)
    fake_provider.on("POST", "/v1/chat/completions", json_reply(completion()))
    assert other.test_client().post(CHAT, json=body()).status_code == 200
    assert sample(telemetry_app, "llm_usage_total_tokens_total", provider="openai", model="gpt-4o") is None
    assert sample(other, "llm_usage_total_tokens_total", provider="openai", model="gpt-4o") == 18


def test_upstream_clock_is_not_left_behind(telemetry_app, fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", json_reply(completion()))
    telemetry_app.test_client().post(CHAT, json=body(), buffered=True)
    assert transport.upstream_clock.get() is None


def test_telemetry_off_installs_nothing(make_app, gateway_env, fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", json_reply(completion()))
    app = make_app({**gateway_env, "TELEMETRY_ENABLE": "false"})
    response = app.test_client().post(CHAT, json=body(), buffered=True)
    assert response.status_code == 200
    assert "Server-Timing" not in response.headers
    assert "telemetry" not in app.extensions
    assert transport.upstream_clock.get() is None


def test_a_fan_out_waited_for_in_the_request_counts_as_upstream(make_app, gateway_env, fake_provider):
    """GET /v1/models asks two providers at once, in other threads: their wait is still upstream time."""
    fake_provider.on("GET", "/v1/models", json_reply({"object": "list", "data": []}, hang=0.3))
    fake_provider.on("GET", "/deepseek/models", json_reply({"object": "list", "data": []}, hang=0.3))
    app = make_app({**gateway_env, "DEEPSEEK_API_URL": fake_provider.url + "/deepseek", "DEEPSEEK_API_KEY": "sk"})
    listed = app.test_client().get("/v1/models", buffered=True)
    assert listed.status_code == 200
    assert sorted(r.path for r in fake_provider.requests) == ["/deepseek/models", "/v1/models"]
    timing = TIMING.fullmatch(listed.headers["Server-Timing"])
    assert float(timing["upstream"]) >= 300 > float(timing["gateway"])


def test_proxy_paths_share_one_series_per_provider(telemetry_app, fake_provider):
    fake_provider.on("GET", "*", json_reply({"data": []}))
    client = telemetry_app.test_client()
    for path in ("/proxy/openai/files", "/proxy/openai/files/file-1", "/proxy/openai/batches?limit=2"):
        assert client.get(path, buffered=True).status_code == 200
    assert sample(telemetry_app, "llm_responses_total", provider="openai", request_method="GET",
                  request_path="/proxy/<provider>/<proxy_tail:tail>", status_code="200") == 3


def test_tool_names_from_answers_are_bounded_like_models(make_app, gateway_env, fake_provider):
    """A client's own tools can have any name: past TELEMETRY_MAX_MODEL_LABELS names per tool
    type the calls are still counted, under `other`, instead of making new series."""
    app = make_app({**gateway_env, "TELEMETRY_MAX_MODEL_LABELS": "2"})
    client = app.test_client()
    for name in ("lookup", "search", "translate", "summarise"):
        call = {"id": "1", "type": "function", "function": {"name": name, "arguments": "{}"}}
        answer = {"id": "c", "object": "chat.completion", "usage": USAGE, "choices": [
            {"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]}}]}
        fake_provider.on("POST", "/v1/chat/completions", json_reply(answer))
        assert client.post(CHAT, json=body(), buffered=True).status_code == 200
    model = {"provider": "openai", "model": "gpt-4o", "tool_type": "standard_tool_use"}
    counted = {name: sample(app, "llm_tool_calls_total", **model, tool_name=name)
               for name in ("lookup", "search", "translate", "summarise", "other")}
    assert counted == {"lookup": 1, "search": 1, "translate": None, "summarise": None, "other": 2}
