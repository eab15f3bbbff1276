"""The agent loop in the real gunicorn (gevent) gateway: the openai SDK as client, a fake
provider scripted to call MCP tools, and the real FastMCP server running them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
import requests

from tests.mcp.conftest import eventually
from tests.support.fake_provider import FakeProvider, Recorded, Reply, json_reply, sse_reply
from tests.support.gateway_log import access_lines
from tests.support.live_gateway import GatewayLauncher, LiveGateway, free_port
from tests.support.polling import wait_for

CHAT = "/v1/chat/completions"
MAX_ITERATIONS = 3
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}
USER = [{"role": "user", "content": "add 2 and 3"}]


@pytest.fixture(scope="module")
def shared_fake() -> Iterator[FakeProvider]:
    fake = FakeProvider().start()
    yield fake
    fake.stop()


def gateway_env(fake: FakeProvider, servers: str, **extra: str) -> dict[str, str]:
    return {"OPENAI_API_URL": fake.url + "/v1", "OPENAI_API_KEY": "sk-provider-secret",
            "MCP_ENABLE": "true", "MCP_EXPOSE": "true", "MCP_SERVERS": servers,
            "MCP_MAX_ITERATIONS": str(MAX_ITERATIONS), "DISALLOWED_MODELS": "openai/forbidden", **extra}


def listed(gateway: LiveGateway) -> list[dict]:
    return requests.get(gateway.url + "/v1/mcp/tools", timeout=5).json()["data"]


@pytest.fixture(scope="module")
def gateway(shared_fake, mcp_server, tmp_path_factory) -> Iterator[LiveGateway]:
    launcher = GatewayLauncher(tmp_path_factory.mktemp("mcp-gateway"))
    gateway = launcher(gateway_env(shared_fake, mcp_server.url))
    eventually(lambda: listed(gateway))
    yield gateway
    launcher.stop_all()


@pytest.fixture
def fake(shared_fake: FakeProvider) -> FakeProvider:
    return shared_fake.reset()


@pytest.fixture
def sdk(gateway: LiveGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="client-key-never-forwarded", max_retries=0,
                         timeout=20)


def call(name: str, arguments: dict, call_id: str = "call_1") -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def completion(content: str | None = None, calls: list[dict] | None = None) -> dict:
    message: dict = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def tools_then_text(*calls: dict):
    def reply(request: Recorded) -> Reply:
        messages = request.json()["messages"]
        if messages[-1]["role"] != "tool":
            return json_reply(completion(calls=list(calls)))
        return json_reply(completion("results: " + " | ".join(m["content"] for m in messages if m["role"] == "tool")))
    return reply


def chunk(delta: dict, finish: str | None = None) -> dict:
    return {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_non_stream_loop_runs_mcp_tools_next_to_the_clients_own(sdk, fake):
    fake.on("POST", CHAT, tools_then_text(call("mcp_add", {"a": 2, "b": 3})))
    answer = sdk.chat.completions.create(model="openai/gpt-4o", messages=USER, tools=[WEATHER])
    assert answer.choices[0].message.content == "results: 5"
    first, second = fake.requests
    assert [t["function"]["name"] for t in first.json()["tools"]] == [
        "get_weather", "mcp_add", "mcp_explode", "mcp_slow_echo"]
    assert first.json()["model"] == "gpt-4o"
    assert second.json()["messages"][-1] == {"role": "tool", "tool_call_id": "call_1", "content": "5"}
    for sent in fake.requests:
        assert sent.headers["authorization"] == "Bearer sk-provider-secret"


def test_stream_loop_is_one_stream_with_one_done(gateway, sdk, fake):
    def reply(request: Recorded) -> Reply:
        if request.json()["messages"][-1]["role"] != "tool":
            return sse_reply([
                chunk({"role": "assistant", "content": "Adding. "}),
                chunk({"tool_calls": [{"index": 0, "id": "call_s", "type": "function",
                                       "function": {"name": "mcp_add", "arguments": '{"a": 20, '}}]}),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"b": 22}'}}]}),
                chunk({}, "tool_calls")], delay=0.01)
        return sse_reply([chunk({"content": "It is " + request.json()["messages"][-1]["content"]}), chunk({}, "stop")])
    fake.on("POST", CHAT, reply)
    text = "".join(c.choices[0].delta.content or "" for c in
                   sdk.chat.completions.create(model="openai/gpt-4o", messages=USER, stream=True) if c.choices)
    assert text == "Adding. It is 42"
    raw = requests.post(gateway.url + CHAT, json={"model": "openai/gpt-4o", "messages": USER, "stream": True},
                        timeout=20)
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.count("data: [DONE]") == 1 and raw.text.endswith("data: [DONE]\n\n")


def test_the_iteration_cap_ends_the_loop(sdk, fake):
    fake.on("POST", CHAT, json_reply(completion(calls=[call("mcp_add", {"a": 1, "b": 1})])))
    answer = sdk.chat.completions.create(model="openai/gpt-4o", messages=USER)
    assert len(fake.requests) == MAX_ITERATIONS
    assert answer.choices[0].finish_reason == "tool_calls"


def test_a_client_tool_call_goes_back_to_the_client(sdk, fake):
    fake.on("POST", CHAT, json_reply(completion(calls=[call("get_weather", {})])))
    answer = sdk.chat.completions.create(model="openai/gpt-4o", messages=USER, tools=[WEATHER])
    assert len(fake.requests) == 1
    assert answer.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_a_failing_tool_is_read_by_the_model(sdk, fake):
    fake.on("POST", CHAT, tools_then_text(call("mcp_explode", {"reason": "x"})))
    answer = sdk.chat.completions.create(model="openai/gpt-4o", messages=USER)
    assert answer.choices[0].message.content.startswith("results: Error: ")


def test_several_tools_run_at_once_in_the_gevent_worker(sdk, fake):
    # each call returns only once both are running on the server ("alone: ..." if they never were)
    calls = [call("mcp_slow_echo", {"text": "a", "seconds": 2, "together": 2}, "c1"),
             call("mcp_slow_echo", {"text": "b", "seconds": 2, "together": 2}, "c2")]
    fake.on("POST", CHAT, tools_then_text(*calls))
    answer = sdk.chat.completions.create(model="openai/gpt-4o", messages=USER)
    assert answer.choices[0].message.content == "results: a | b"


def test_the_model_policy_applies_on_the_mcp_path(sdk, fake):
    with pytest.raises(openai.PermissionDeniedError):
        sdk.chat.completions.create(model="openai/forbidden", messages=USER)
    assert fake.requests == []


def test_a_provider_error_passes_through(sdk, fake):
    fake.on("POST", CHAT, json_reply({"error": {"message": "slow down", "type": "rate"}}, status=429))
    with pytest.raises(openai.RateLimitError, match="slow down"):
        sdk.chat.completions.create(model="openai/gpt-4o", messages=USER)


def test_a_server_down_at_start_gets_its_tools_to_the_model_later(shared_fake, live_gateway, make_mcp_server):
    fake = shared_fake.reset()
    fake.on("POST", CHAT, tools_then_text(call("mcp_add", {"a": 1, "b": 2})))
    port = free_port()
    gateway = live_gateway(gateway_env(fake, f"http://127.0.0.1:{port}/mcp", MCP_MAX_RETRIES="1",
                                       MCP_RECONNECT_INTERVAL="200ms", MCP_POLLING_INTERVAL="200ms",
                                       MCP_DIAL_TIMEOUT="500ms"))
    body = {"model": "openai/gpt-4o", "messages": USER, "tools": [WEATHER]}
    before = requests.post(gateway.url + CHAT, json=body, timeout=20)
    assert before.status_code == 200
    assert [t["function"]["name"] for t in fake.requests[-1].json()["tools"]] == ["get_weather"]
    make_mcp_server(port).start()
    eventually(lambda: listed(gateway))
    fake.requests.clear()
    after = requests.post(gateway.url + CHAT, json=body, timeout=20).json()
    assert after["choices"][0]["message"]["content"] == "results: 3"
    assert "mcp_add" in [t["function"]["name"] for t in fake.requests[0].json()["tools"]]


def test_a_provider_error_on_a_stream_passes_through_with_its_status(sdk, fake):
    fake.on("POST", CHAT, json_reply({"error": {"message": "slow down", "type": "rate"}}, status=429))
    with pytest.raises(openai.RateLimitError, match="slow down"):
        list(sdk.chat.completions.create(model="openai/gpt-4o", messages=USER, stream=True))



def test_loop_calls_without_usage_are_charged_an_estimate(shared_fake, mcp_server, live_gateway, tmp_path):
    """A provider that reports no usage: each model call of the loop is charged the gateway's
    estimate (marked), as a plain chat call would be, so token budgets and the ledger see them."""
    fake = shared_fake.reset()

    def reply(request: Recorded) -> Reply:
        messages = request.json()["messages"]
        if messages[-1]["role"] != "tool":
            answer = completion(calls=[call("mcp_add", {"a": 2, "b": 3})])
        else:
            answer = completion("results: " + messages[-1]["content"])
        del answer["usage"]
        return json_reply(answer)

    fake.on("POST", CHAT, reply)
    gateway = live_gateway(gateway_env(shared_fake, mcp_server.url, ACCOUNTS_ENABLE="true",
                                       DATABASE_URL=f"sqlite:///{tmp_path}/gateway.db"))
    eventually(lambda: listed(gateway))
    question = [{"role": "user", "content": "add 2 and 3, " + "please " * 100}]
    answer = requests.post(gateway.url + CHAT, json={"model": "openai/gpt-4o", "messages": question}, timeout=20)
    assert answer.json()["choices"][0]["message"]["content"] == "results: 5"

    def usage() -> list[dict]:
        return [line["usage"] for line in access_lines(gateway.logs()) if line.get("path") == CHAT and line.get("usage")]

    charged = wait_for(usage, 20, "the loop's access line with its usage")[-1]
    assert charged["estimated"] is True
    assert charged["prompt_tokens"] >= 2 * 700 // 4  # two model calls, each sent the long question
