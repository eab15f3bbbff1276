"""Usage and tool-call signals, from the app in this process talking to a real fake provider over HTTP.

The tests listen to the signals the app sends; what they carry comes from the provider's answers
and from the app's own auth (the subject of the API key the client used)."""

from __future__ import annotations

import hashlib
import time

import pytest

from app import signals
from app.mcp import EXTENSION_KEY as MCP_KEY
from tests.support.fake_provider import json_reply, sse_reply
from tests.support.mcp_process import MCPServerProcess

USER = [{"role": "user", "content": "hi"}]
USAGE = {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}


API_KEY = "client-key-0001"
SUBJECT = "key:" + hashlib.sha256(API_KEY.encode()).hexdigest()[:8]  # how auth names an API key


@pytest.fixture
def gateway(make_app, fake_provider):
    return make_app({"OPENAI_API_URL": fake_provider.url + "/v1", "OPENAI_API_KEY": "sk"})


@pytest.fixture
def gateway_with_auth(make_app, fake_provider):
    return make_app({"OPENAI_API_URL": fake_provider.url + "/v1", "OPENAI_API_KEY": "sk", "AUTH_ENABLE": "true",
                     "AUTH_API_KEYS": API_KEY, "AUTH_OIDC_ISSUER": ""})


@pytest.fixture
def heard():
    """Every completion_usage and tool_called signal sent during the test (by the app: the sender)."""
    got: list[tuple[str, dict]] = []

    def usage(sender, **kwargs):
        assert sender.name == "app"  # the Flask app, never a proxy or None
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


def test_hidden_usage_chunk_still_reaches_the_signal_with_the_subject(gateway_with_auth, fake_provider, heard):
    fake_provider.on("POST", "/v1/chat/completions", sse_reply([chunk(content="Hi"), {"id": "c", "choices": [],
                                                                                      "usage": USAGE}]))
    body = gateway_with_auth.test_client().post(
        "/v1/chat/completions", json={"model": "openai/gpt-4o", "messages": USER, "stream": True},
        headers={"Authorization": f"Bearer {API_KEY}"}).get_data()
    assert b'"usage":{' not in body.replace(b" ", b"") and body.endswith(b"data: [DONE]\n\n")
    assert heard == [("usage", {"provider": "openai", "model": "gpt-4o", "usage": USAGE, "subject": SUBJECT,
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
    assert [(kind, kw.get("tool_name")) for kind, kw in heard] == [("tool", "lookup"), ("usage", None)]
    assert heard[1][1]["usage"]["estimated"] is True  # the stream carried no usage: charged an estimate


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


def test_embeddings_usage_is_signalled(gateway, fake_provider, heard):
    fake_provider.on("POST", "/v1/embeddings", json_reply({
        "object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
        "usage": {"prompt_tokens": 2, "total_tokens": 2}}))
    assert gateway.test_client().post("/v1/embeddings", json={"model": "openai/te-3", "input": "x"}).status_code == 200
    assert heard == [("usage", {"provider": "openai", "model": "te-3", "subject": None, "stream": False,
                                "usage": {"prompt_tokens": 2, "total_tokens": 2, "completion_tokens": 0}})]


# -- the MCP path: every model call of the agent loop is metered on its own -------------------------

@pytest.fixture(scope="module")
def mcp_server(tmp_path_factory):
    server = MCPServerProcess(log_dir=tmp_path_factory.mktemp("mcp")).start()
    yield server
    server.stop()


@pytest.fixture
def agent_gateway(make_app, fake_provider, mcp_server):
    app = make_app({"OPENAI_API_URL": fake_provider.url + "/v1", "OPENAI_API_KEY": "sk", "MCP_ENABLE": "true",
                    "MCP_SERVERS": mcp_server.url})
    catalog = app.extensions[MCP_KEY].catalog
    catalog.start()
    deadline = time.monotonic() + 20
    while not catalog.tools():
        assert time.monotonic() < deadline, "the MCP server's tools never arrived"
        time.sleep(0.05)
    yield app
    catalog.stop()


def add_then_answer(stream: bool):
    """The model calls mcp_add first (usage 10), then answers with the result (usage 20)."""
    first_usage = {"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10}
    second_usage = {"prompt_tokens": 15, "completion_tokens": 5, "total_tokens": 20}
    call = {"id": "call_1", "type": "function", "function": {"name": "mcp_add", "arguments": '{"a": 2, "b": 3}'}}

    def reply(recorded):
        result = recorded.json()["messages"][-1]["role"] == "tool"
        if stream:
            delta = {"content": "5"} if result else {"tool_calls": [{"index": 0, **call}]}
            return sse_reply([chunk(**delta), {"id": "c", "choices": [],
                                               "usage": second_usage if result else first_usage}])
        message = {"role": "assistant", "content": "5"} if result else {"role": "assistant", "tool_calls": [call]}
        return json_reply({"id": "c", "choices": [{"index": 0, "message": message}],
                           "usage": second_usage if result else first_usage})
    return reply, first_usage, second_usage


@pytest.mark.parametrize("stream", [False, True])
def test_each_model_call_of_the_agent_loop_reports_its_usage_and_tool_calls(agent_gateway, fake_provider, heard,
                                                                             stream):
    reply, first_usage, second_usage = add_then_answer(stream)
    fake_provider.on("POST", "/v1/chat/completions", reply)
    answer = agent_gateway.test_client().post("/v1/chat/completions", json={
        "model": "openai/gpt-4o", "messages": USER, "stream": stream})
    assert answer.status_code == 200
    assert (b'"content":"5"' in answer.get_data().replace(b" ", b"")) and len(fake_provider.requests) == 2
    facts = {"provider": "openai", "model": "gpt-4o", "subject": None, "stream": stream}
    assert heard == [("tool", {"provider": "openai", "model": "gpt-4o", "tool_name": "mcp_add", "tool_type": "mcp"}),
                     ("usage", {**facts, "usage": first_usage}), ("usage", {**facts, "usage": second_usage})]


def test_the_agent_path_checks_images_like_the_plain_one(agent_gateway, fake_provider, heard):
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}]
    refused = agent_gateway.test_client().post("/v1/chat/completions", json={"model": "openai/gpt-4o",
                                                                             "messages": image})
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "vision_disabled"
    assert fake_provider.requests == [] and heard == []
