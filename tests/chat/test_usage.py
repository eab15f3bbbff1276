"""Usage and tool-call signals, from the app in this process talking to a real fake provider over HTTP."""

from __future__ import annotations

import pytest

from app import signals
from tests.support.fake_provider import json_reply, sse_reply

USER = [{"role": "user", "content": "hi"}]
USAGE = {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}


@pytest.fixture
def gateway(make_app, fake_provider):
    return make_app({"OPENAI_API_URL": fake_provider.url + "/v1", "OPENAI_API_KEY": "sk"})


@pytest.fixture
def heard(gateway):
    """Every completion_usage and tool_called signal the app sends during the test."""
    got: list[tuple[str, dict]] = []

    def usage(sender, **kwargs):
        assert sender is gateway
        got.append(("usage", kwargs))

    def tool(sender, **kwargs):
        got.append(("tool", kwargs))

    signals.completion_usage.connect(usage)
    signals.tool_called.connect(tool)
    yield got
    signals.completion_usage.disconnect(usage)
    signals.tool_called.disconnect(tool)


def chunk(**delta):
    return {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}], "usage": None}


def test_hidden_usage_chunk_still_reaches_the_signal(gateway, fake_provider, heard):
    fake_provider.on("POST", "/v1/chat/completions", sse_reply([chunk(content="Hi"), {"id": "c", "choices": [],
                                                                                      "usage": USAGE}]))
    with gateway.test_client() as client:
        body = client.post("/v1/chat/completions", json={"model": "openai/gpt-4o", "messages": USER, "stream": True},
                           environ_base={signals.SUBJECT_KEY: "alice"}).get_data()
    assert b'"usage":{' not in body.replace(b" ", b"") and body.endswith(b"data: [DONE]\n\n")
    assert heard == [("usage", {"provider": "openai", "model": "gpt-4o", "usage": USAGE, "subject": "alice",
                                "stream": True})]


def test_usage_chunk_the_client_asked_for_is_passed_and_counted_once(gateway, fake_provider, heard):
    fake_provider.on("POST", "/v1/chat/completions", sse_reply([chunk(content="Hi"), {"id": "c", "choices": [],
                                                                                      "usage": USAGE}]))
    body = gateway.test_client().post("/v1/chat/completions", json={
        "model": "openai/gpt-4o", "messages": USER, "stream": True,
        "stream_options": {"include_usage": True}}).get_data()
    assert b'"prompt_tokens": 11' in body
    assert [kind for kind, _ in heard] == ["usage"] and heard[0][1]["usage"] == USAGE


def test_non_stream_usage_and_tool_calls_are_signalled(gateway, fake_provider, heard):
    calls = [{"id": "1", "type": "function", "function": {"name": "mcp_search", "arguments": "{}"}},
             {"id": "2", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]
    fake_provider.on("POST", "/v1/chat/completions", json_reply({
        "id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": calls}}],
        "usage": USAGE}))
    assert gateway.test_client().post("/v1/chat/completions",
                                      json={"model": "openai/gpt-4o", "messages": USER}).status_code == 200
    assert [(kind, kw.get("tool_name"), kw.get("tool_type")) for kind, kw in heard] == [
        ("tool", "mcp_search", "mcp"), ("tool", "weather", "standard_tool_use"), ("usage", None, None)]
    assert heard[2][1] == {"provider": "openai", "model": "gpt-4o", "usage": USAGE, "subject": None, "stream": False}


def test_streamed_tool_call_is_signalled_once(gateway, fake_provider, heard):
    fake_provider.on("POST", "/v1/chat/completions", sse_reply([
        chunk(tool_calls=[{"index": 0, "id": "1", "type": "function", "function": {"name": "lookup", "arguments": ""}}]),
        chunk(tool_calls=[{"index": 0, "function": {"arguments": "{\"name\": 1}"}}])]))
    gateway.test_client().post("/v1/chat/completions",
                               json={"model": "openai/gpt-4o", "messages": USER, "stream": True}).get_data()
    assert [(kind, kw.get("tool_name")) for kind, kw in heard] == [("tool", "lookup")]


def test_provider_errors_send_no_usage(gateway, fake_provider, heard):
    fake_provider.on("POST", "/v1/chat/completions", json_reply({"error": {"message": "nope"}}, 400))
    answer = gateway.test_client().post("/v1/chat/completions", json={"model": "openai/gpt-4o", "messages": USER})
    assert answer.status_code == 400 and answer.get_json() == {"error": {"message": "nope"}}
    assert heard == []


def test_non_stream_usage_with_details_is_read_whole(gateway, fake_provider, heard):
    usage = {**USAGE, "prompt_tokens_details": {"cached_tokens": 5}, "completion_tokens_details": {"reasoning_tokens": 2}}
    fake_provider.on("POST", "/v1/chat/completions", json_reply({
        "id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": 'say "usage": {}'}}],
        "usage": usage, "service_tier": "default"}))
    gateway.test_client().post("/v1/chat/completions", json={"model": "openai/gpt-4o", "messages": USER})
    assert heard == [("usage", {"provider": "openai", "model": "gpt-4o", "usage": usage, "subject": None,
                                "stream": False})]
