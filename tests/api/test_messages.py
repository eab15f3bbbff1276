"""POST /v1/messages and /v1/messages/count_tokens: the real `anthropic` SDK pointed at the real
gunicorn gateway, a fake Anthropic that checks the path, headers and body it receives, and every
error in Anthropic's shape, so the SDK raises its own error classes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import pytest
import requests
from anthropic._constants import ANTHROPIC_API_VERSION

from tests.api.conftest import GATEWAY_KEY, PROVIDER_KEYS, access_line, gateway_env, request_id
from tests.api.shapes import anthropic_events, anthropic_message, named_sse_reply
from tests.support.fake_provider import Reply, json_reply
from tests.support.live_gateway import LiveGateway

USER = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def claude(gateway: LiveGateway) -> Iterator[anthropic.Anthropic]:
    """The SDK as a user sets it up: base URL the gateway, the gateway key as its API key."""
    with anthropic.Anthropic(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0, timeout=20) as client:
        yield client


def test_create_with_a_bare_claude_model_reaches_anthropic_with_its_own_key(claude, gateway, fakes):
    fakes.anthropic.on("POST", "/v1/messages", json_reply(anthropic_message("Hi!")))
    rid = request_id()
    message = claude.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=USER, system="be brief",
                                     metadata={"user_id": "u-1"}, extra_body={"temperature": 0.3},
                                     extra_headers={"anthropic-beta": "context-1m-2025-08-07", "X-Request-ID": rid})
    assert message.content[0].text == "Hi!"
    sent = fakes.anthropic.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == PROVIDER_KEYS["anthropic"]
    assert "authorization" not in sent.headers  # the gateway key (a bearer token here) never leaves
    assert sent.headers["anthropic-version"] == ANTHROPIC_API_VERSION  # the SDK's, not the catalog's default
    assert sent.headers["anthropic-beta"] == "context-1m-2025-08-07"
    assert sent.json() == {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": USER, "system": "be brief",
                           "metadata": {"user_id": "u-1"}, "temperature": 0.3}
    line = access_line(gateway, rid)
    assert (line["provider"], line["model"], line["status"]) == ("anthropic", "claude-sonnet-4-5", 200)
    # prompt = input 10 + cache creation 3 + cache read 2; completion = 9
    assert (line["usage"]["prompt_tokens"], line["usage"]["completion_tokens"], line["usage"]["total_tokens"]) \
        == (15, 9, 24)


def test_the_gateway_key_as_x_api_key_and_a_prefixed_model(gateway, fakes):
    fakes.anthropic.on("POST", "/v1/messages", json_reply(anthropic_message("Hi!")))
    answer = requests.post(gateway.url + "/v1/messages", timeout=20, json={
        "model": "anthropic/claude-opus-4-1", "max_tokens": 10, "messages": USER},
        headers={"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"})
    assert answer.status_code == 200, answer.text
    sent = fakes.anthropic.requests[-1]
    assert sent.json()["model"] == "claude-opus-4-1"
    assert sent.headers["x-api-key"] == PROVIDER_KEYS["anthropic"]
    assert sent.headers["anthropic-version"] == "2023-06-01"


def test_stream_keeps_anthropics_events_and_counts_start_and_delta_usage(claude, gateway, fakes):
    events = anthropic_events(["Hel", "lo", "!"])
    fakes.anthropic.on("POST", "/v1/messages", named_sse_reply(events))
    rid = request_id()
    with claude.messages.stream(model="claude-sonnet-4-5", max_tokens=100, messages=USER,
                                extra_headers={"X-Request-ID": rid}) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello!"
    assert final.usage.output_tokens == 9 and final.stop_reason == "end_turn"
    assert fakes.anthropic.requests[-1].json()["stream"] is True
    usage = access_line(gateway, rid)["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (15, 9, 24)


def test_stream_bytes_keep_their_event_names(gateway, fakes):
    events = anthropic_events(["a"])
    fakes.anthropic.on("POST", "/v1/messages", named_sse_reply(events))
    answer = requests.post(gateway.url + "/v1/messages", timeout=20, headers={"x-api-key": GATEWAY_KEY},
                           json={"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": USER, "stream": True})
    expected = b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)
    assert answer.content == expected


def test_count_tokens(claude, fakes):
    fakes.anthropic.on("POST", "/v1/messages/count_tokens", json_reply({"input_tokens": 42}))
    counted = claude.messages.count_tokens(model="claude-sonnet-4-5", messages=USER)
    assert counted.input_tokens == 42
    sent = fakes.anthropic.requests[-1]
    assert sent.path == "/v1/messages/count_tokens" and sent.json() == {"model": "claude-sonnet-4-5",
                                                                         "messages": USER}
    assert sent.headers["x-api-key"] == PROVIDER_KEYS["anthropic"]


def error_of(exc: anthropic.APIStatusError) -> dict:
    assert exc.response.headers["content-type"] == "application/json"
    body = exc.response.json()
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    return body["error"]


def test_gateway_errors_come_in_anthropics_shape_as_the_sdks_classes(claude, gateway, fakes):
    with (anthropic.Anthropic(base_url=gateway.url, api_key="not-the-key", max_retries=0) as stranger,
          pytest.raises(anthropic.AuthenticationError) as info):
        stranger.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=USER)
    assert error_of(info.value)["type"] == "authentication_error"

    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(model="claude-sonnet-4-5", max_tokens=5,
                               messages=[{"role": "system", "content": "hi"}])  # type: ignore[list-item]
    assert error_of(info.value) == {"type": "invalid_request_error",
                                    "message": "Invalid request: messages.0.role: Must be one of: user, assistant."}

    with pytest.raises(anthropic.PermissionDeniedError) as info:
        claude.messages.create(model="claude-forbidden", max_tokens=5, messages=USER)
    assert error_of(info.value)["type"] == "permission_error"

    with pytest.raises(anthropic.BadRequestError) as info:  # no provider/ prefix and no rule for it
        claude.messages.create(model="gpt-4o", max_tokens=5, messages=USER)
    assert "provider/model" in error_of(info.value)["message"]

    with pytest.raises(anthropic.HTTPNotImplementedError) as info:  # OpenAI has no Messages API
        claude.messages.create(model="openai/gpt-4o", max_tokens=5, messages=USER)
    assert "no messages endpoint" in error_of(info.value)["message"]

    with pytest.raises(anthropic.BadRequestError) as info:  # ENABLE_VISION=false
        claude.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}])
    assert error_of(info.value)["type"] == "invalid_request_error"
    assert fakes.anthropic.requests == [] and fakes.openai.requests == []

    headers = {"x-api-key": GATEWAY_KEY}
    missing = requests.post(gateway.url + "/v1/messages/batches/nope", headers=headers, json={}, timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    wrong_method = requests.get(gateway.url + "/v1/messages", headers=headers, timeout=10)
    assert wrong_method.status_code == 405 and wrong_method.json()["type"] == "error"
    not_json = requests.post(gateway.url + "/v1/messages", headers=headers, data="model=claude", timeout=10)
    assert not_json.status_code == 415 and not_json.json()["error"]["type"] == "invalid_request_error"
    # elsewhere the OpenAI envelope stays
    assert "type" not in requests.get(gateway.url + "/v1/nothing", headers=headers, timeout=10).json()


def test_anthropics_own_error_passes_through_as_it_came(claude, fakes):
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},
                  "request_id": "req_011"}
    fakes.anthropic.on("POST", "/v1/messages", json_reply(overloaded, status=529))
    with pytest.raises(anthropic.OverloadedError) as info:
        claude.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=USER)
    assert info.value.response.json() == overloaded


def test_a_stream_cut_mid_way_ends_with_anthropics_error_event(claude, fakes):
    events = anthropic_events(["partial"])[:4]
    chunks = [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]
    fakes.anthropic.on("POST", "/v1/messages", Reply(headers={"Content-Type": "text/event-stream"},
                                                     chunks=[*chunks, b""], pauses=[0, 0, 0, 0, 8]))
    with (pytest.raises(anthropic.APIStatusError) as info,
          claude.messages.stream(model="claude-sonnet-4-5", max_tokens=100, messages=USER) as stream):
        for _ in stream.text_stream:
            pass
    assert "stopped sending" in str(info.value)


def test_limits_answer_429_in_anthropics_shape(live_gateway, fakes, tmp_path):
    fakes.anthropic.on("POST", "/v1/messages", json_reply(anthropic_message("Hi!")))
    gateway = live_gateway(gateway_env(fakes, str(tmp_path / "ledger.db"), RATE_LIMIT_ENABLE="true",
                                       RATE_LIMIT_DEFAULT="1/minute", RATE_LIMIT_STORAGE_URI="memory://"))
    with anthropic.Anthropic(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0) as claude:
        claude.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=USER)
        with pytest.raises(anthropic.RateLimitError) as info:
            claude.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=USER)
    assert error_of(info.value)["type"] == "rate_limit_error"
    assert info.value.response.headers["retry-after"]
