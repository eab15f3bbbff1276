"""The request observer and the signal receivers, in-process, against a real local fake provider.

Until the chat endpoint exists, small test views play a provider-routed endpoint: they set the
request facts in the environ, call the provider through `Provider.request` / `iter_body` (so
the upstream clock at the transport boundary is real), and send the signals chat will send.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask, Response, current_app, request

from app import signals
from app.extensions import state
from app.upstream import transport
from tests.support.fake_provider import json_reply, sse_reply

USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
TIMING = re.compile(r"gateway;dur=(?P<gateway>\d+\.\d), upstream;dur=(?P<upstream>\d+\.\d)")


def add_test_views(app: Flask) -> None:
    def complete() -> Response:
        request.environ[signals.PROVIDER_KEY] = "openai"
        request.environ[signals.MODEL_KEY] = "gpt-4o"
        provider = state().providers.lookup("openai")
        upstream = provider.request("POST", "/chat/completions", json={"model": "gpt-4o"})
        body = provider.read_body(upstream)
        signals.completion_usage.send(current_app._get_current_object(), provider="openai", model="gpt-4o",
                                      usage=USAGE, subject=None, stream=False)
        signals.tool_called.send(current_app._get_current_object(), provider="openai", model="gpt-4o",
                                 tool_type="mcp", tool_name="mcp_search")
        return Response(body, status=upstream.status_code, mimetype="application/json")

    def stream() -> Response:
        request.environ[signals.PROVIDER_KEY] = "openai"
        request.environ[signals.MODEL_KEY] = "gpt-4o"
        app_ = current_app._get_current_object()
        provider = state().providers.lookup("openai")
        upstream = provider.request("POST", "/chat/completions", json={"model": "gpt-4o", "stream": True})

        def relay():
            yield from provider.iter_body(upstream)
            signals.completion_usage.send(app_, provider="openai", model="gpt-4o", usage=USAGE, subject=None,
                                          stream=True)

        return Response(relay(), mimetype="text/event-stream")

    def no_provider() -> Response:
        return Response(b'{"ok": true}', mimetype="application/json")

    app.add_url_rule("/v1/test/complete", view_func=complete, methods=["POST"])
    app.add_url_rule("/v1/test/stream", view_func=stream, methods=["POST"])
    app.add_url_rule("/v1/test/local", view_func=no_provider, methods=["GET"])


@pytest.fixture
def telemetry_app(make_app, fake_provider):
    app = make_app({"TELEMETRY_ENABLE": "true", "OPENAI_API_URL": fake_provider.url + "/v1",
                    "OPENAI_API_KEY": "sk-test"})
    add_test_views(app)
    return app


def sample(app: Flask, name: str, **labels: str) -> float | None:
    return app.extensions["telemetry"].registry.get_sample_value(name, labels)


def test_non_stream_counts_response_and_tokens_and_sends_server_timing(telemetry_app, fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", json_reply({"id": "c1", "usage": USAGE}, hang=0.3))
    response = telemetry_app.test_client().post("/v1/test/complete", json={}, buffered=True)
    assert response.status_code == 200

    timing = TIMING.fullmatch(response.headers["Server-Timing"])
    assert timing, response.headers["Server-Timing"]
    assert float(timing["upstream"]) >= 300  # the provider's hang is the provider's time...
    assert float(timing["gateway"]) < float(timing["upstream"])  # ...not the gateway's

    route = {"provider": "openai", "request_method": "POST", "request_path": "/v1/test/complete"}
    assert sample(telemetry_app, "llm_responses_total", **route, status_code="200") == 1
    assert sample(telemetry_app, "llm_request_duration_count", **route) == 1
    assert sample(telemetry_app, "llm_request_duration_sum", **route) >= 300
    model = {"provider": "openai", "model": "gpt-4o"}
    assert sample(telemetry_app, "llm_usage_prompt_tokens_total", **model) == 11
    assert sample(telemetry_app, "llm_usage_completion_tokens_total", **model) == 7
    assert sample(telemetry_app, "llm_usage_total_tokens_total", **model) == 18
    assert sample(telemetry_app, "llm_tool_calls_total", **model, tool_type="mcp", tool_name="mcp_search") == 1
    overhead = sample(telemetry_app, "llm_gateway_overhead_duration_sum", request_method="POST",
                      request_path="/v1/test/complete")
    assert overhead is not None and overhead < 300


def test_stream_has_no_server_timing_and_records_time_to_first_token(telemetry_app, fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", sse_reply([{"n": 1}, {"n": 2}, {"n": 3}], delay=0.15))
    response = telemetry_app.test_client().post("/v1/test/stream", json={}, buffered=False)
    assert "Server-Timing" not in response.headers
    body = b"".join(response.response)
    response.close()
    assert body.count(b"data: ") == 4

    route = {"provider": "openai", "request_method": "POST", "request_path": "/v1/test/stream"}
    assert sample(telemetry_app, "llm_responses_total", **route, status_code="200") == 1
    duration = sample(telemetry_app, "llm_request_duration_sum", **route)
    assert duration >= 450  # the whole stream, not just its headers
    ttft = sample(telemetry_app, "llm_time_to_first_token_sum", provider="openai", model="gpt-4o")
    assert 150 <= ttft < duration
    assert sample(telemetry_app, "llm_time_to_first_token_count", provider="openai", model="gpt-4o") == 1
    # Streamed usage counts like any other.
    assert sample(telemetry_app, "llm_usage_total_tokens_total", provider="openai", model="gpt-4o") == 18
    # The waits between events were the provider's.
    overhead = sample(telemetry_app, "llm_gateway_overhead_duration_sum", request_method="POST",
                      request_path="/v1/test/stream")
    assert overhead < duration / 3


def test_requests_without_a_provider_count_only_gateway_time(telemetry_app):
    client = telemetry_app.test_client()
    local = client.get("/v1/test/local", buffered=True)
    assert re.fullmatch(r"gateway;dur=\d+\.\d", local.headers["Server-Timing"])  # no upstream part
    for path in ("/v1/nothing-1", "/v1/nothing-2", "/random/3"):
        assert client.get(path, buffered=True).status_code == 404
    client.get("/health")

    assert sample(telemetry_app, "llm_gateway_overhead_duration_count", request_method="GET",
                  request_path="/v1/test/local") == 1
    # Unknown paths share one series, so clients cannot create unbounded ones.
    assert sample(telemetry_app, "llm_gateway_overhead_duration_count", request_method="GET",
                  request_path="unmatched") == 3
    assert sample(telemetry_app, "llm_gateway_overhead_duration_count", request_method="GET",
                  request_path="/health") is None
    exposed = [s for m in telemetry_app.extensions["telemetry"].registry.collect() for s in m.samples
               if s.name == "llm_responses_total"]
    assert exposed == []  # like the original: llm_* request metrics only when a provider is known


def test_upstream_failure_is_counted_with_its_status(telemetry_app):
    from tests.support.live_gateway import free_port

    # A provider nobody listens for: 502.
    telemetry_app.extensions["gateway"].providers.lookup("openai").base_url = f"http://127.0.0.1:{free_port()}/v1"
    response = telemetry_app.test_client().post("/v1/test/complete", json={}, buffered=True)
    assert response.status_code == 502
    assert sample(telemetry_app, "llm_responses_total", provider="openai", request_method="POST",
                  request_path="/v1/test/complete", status_code="502") == 1


def test_usage_signal_tolerates_missing_and_odd_fields(telemetry_app):
    with telemetry_app.app_context():
        signals.completion_usage.send(telemetry_app, provider="groq", model="llama", subject=None, stream=True,
                                      usage={"prompt_tokens": 5, "completion_tokens": 2})
        signals.completion_usage.send(telemetry_app, provider="groq", model="llama", subject=None, stream=True,
                                      usage={"prompt_tokens": "many", "completion_tokens": None})
        signals.completion_usage.send(telemetry_app, provider="groq", model="llama", subject=None, stream=True,
                                      usage=None)
    labels = {"provider": "groq", "model": "llama"}
    assert sample(telemetry_app, "llm_usage_prompt_tokens_total", **labels) == 5
    assert sample(telemetry_app, "llm_usage_total_tokens_total", **labels) == 7  # derived when absent


def test_signals_of_another_app_are_not_counted(telemetry_app, make_app):
    other = make_app({"TELEMETRY_ENABLE": "true"})
    signals.completion_usage.send(other, provider="openai", model="m", usage=USAGE, subject=None, stream=False)
    assert sample(telemetry_app, "llm_usage_total_tokens_total", provider="openai", model="m") is None
    assert sample(other, "llm_usage_total_tokens_total", provider="openai", model="m") == 18


def test_upstream_clock_is_not_left_behind(telemetry_app, fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", json_reply({"id": "c1"}))
    telemetry_app.test_client().post("/v1/test/complete", json={}, buffered=True)
    assert transport.upstream_clock.get() is None


def test_telemetry_off_installs_nothing(make_app, fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", json_reply({"id": "c1"}))
    app = make_app({"OPENAI_API_URL": fake_provider.url + "/v1", "OPENAI_API_KEY": "sk-test"})
    add_test_views(app)
    response = app.test_client().post("/v1/test/complete", json={}, buffered=True)
    assert response.status_code == 200
    assert "Server-Timing" not in response.headers
    assert "telemetry" not in app.extensions
    assert transport.upstream_clock.get() is None


def test_a_fan_out_waited_for_in_the_request_counts_as_upstream(telemetry_app, fake_provider):
    from concurrent.futures import ThreadPoolExecutor

    fake_provider.on("GET", "/v1/models", json_reply({"data": []}, hang=0.3))

    def fan_out() -> Response:
        provider = state().providers.lookup("openai")
        with ThreadPoolExecutor(2) as pool, transport.waiting_for_providers():
            list(pool.map(lambda _: provider.read_body(provider.request("GET", "/models")), range(2)))
        return Response(b"{}", mimetype="application/json")

    telemetry_app.add_url_rule("/v1/test/fan-out", view_func=fan_out)
    timing = TIMING.fullmatch(telemetry_app.test_client().get("/v1/test/fan-out", buffered=True)
                              .headers["Server-Timing"])
    assert float(timing["upstream"]) >= 300 > float(timing["gateway"])


def test_proxy_paths_share_one_series_per_provider(telemetry_app, fake_provider):
    fake_provider.on("GET", "*", json_reply({"data": []}))
    client = telemetry_app.test_client()
    for path in ("/proxy/openai/files", "/proxy/openai/files/file-1", "/proxy/openai/batches?limit=2"):
        assert client.get(path, buffered=True).status_code == 200
    assert sample(telemetry_app, "llm_responses_total", provider="openai", request_method="GET",
                  request_path="/proxy/<provider>/<proxy_tail:tail>", status_code="200") == 3
