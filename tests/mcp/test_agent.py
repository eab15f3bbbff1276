"""The agent loop against a fake provider (real HTTP) and the real FastMCP server.

`call_model` / `open_stream` here do what the chat view does: send the body to the provider and
hand back the parsed answer or the SSE data payloads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests

from app.config import Settings
from app.errors import UpstreamStatus
from app.mcp.agent import AgentLoop
from app.mcp.catalog import ToolCatalog
from tests.mcp.conftest import eventually
from tests.support.fake_provider import FakeProvider, Recorded, Reply, json_reply, sse_reply

CLIENT_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather.",
                                                "parameters": {"type": "object", "properties": {}}}}


@pytest.fixture(scope="module")
def catalog(mcp_server) -> Iterator[ToolCatalog]:
    catalog = ToolCatalog(Settings.from_environ({"MCP_ENABLE": "true", "MCP_SERVERS": mcp_server.url}))
    catalog.start()
    eventually(catalog.tools)
    yield catalog
    catalog.stop()


def caller(fake: FakeProvider):
    def call_model(body: dict) -> dict:
        response = requests.post(fake.url + "/v1/chat/completions", json=body, timeout=10)
        if response.status_code >= 400:
            raise UpstreamStatus(response.status_code, response.content, response.headers.get("Content-Type"))
        return response.json()
    return call_model


def opener(fake: FakeProvider):
    """Like the chat module's stream_events: a lazy generator of parsed events, [DONE] ends it."""
    def open_stream(body: dict) -> Iterator[dict]:
        response = requests.post(fake.url + "/v1/chat/completions", json=body, timeout=10, stream=True)
        try:
            if response.status_code >= 400:
                raise UpstreamStatus(response.status_code, response.content, response.headers.get("Content-Type"))
            for line in response.iter_lines():
                if line == b"data: [DONE]":
                    break
                if line.startswith(b"data: "):
                    yield json.loads(line[6:])
        finally:
            response.close()
    return open_stream


def tool_call(name: str, arguments: dict, call_id: str = "call_1") -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def completion(*, content: str | None = None, calls: list[dict] | None = None) -> dict:
    message = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}]}


def tools_then_text(*calls: dict):
    """The model calls `calls` first; once it has tool results it answers with their contents."""
    def reply(request: Recorded) -> Reply:
        messages = request.json()["messages"]
        if messages[-1]["role"] != "tool":
            return json_reply(completion(calls=list(calls)))
        results = [m["content"] for m in messages if m["role"] == "tool"]
        return json_reply(completion(content="results: " + " | ".join(results)))
    return reply


BODY = {"model": "gpt", "messages": [{"role": "user", "content": "add 2 and 3"}], "tools": [CLIENT_TOOL]}


def test_non_stream_runs_the_tool_and_asks_the_model_again(catalog, fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", tools_then_text(tool_call("mcp_add", {"a": 2, "b": 3})))
    answer = AgentLoop(catalog, max_iterations=10).run(dict(BODY), caller(fake_provider))
    assert answer["choices"][0]["message"]["content"] == "results: 5"
    first, second = (r.json() for r in fake_provider.requests)
    # the client's own tool stays, the MCP tools are added next to it
    assert [t["function"]["name"] for t in first["tools"]] == ["get_weather", "mcp_add", "mcp_explode", "mcp_slow_echo"]
    assert second["messages"][0] == BODY["messages"][0]
    assert second["messages"][1]["tool_calls"][0]["function"]["name"] == "mcp_add"
    assert second["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "5"}
    assert second["model"] == "gpt"
    assert BODY["messages"] == [{"role": "user", "content": "add 2 and 3"}]  # the caller's body is not mutated


def test_a_failing_tool_is_an_error_result_the_model_reads(catalog, fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", tools_then_text(tool_call("mcp_explode", {"reason": "x"})))
    answer = AgentLoop(catalog, max_iterations=10).run(dict(BODY), caller(fake_provider))
    content = answer["choices"][0]["message"]["content"]
    assert content.startswith("results: Error: ") and "explode" in content


def test_bad_arguments_are_an_error_result(catalog, fake_provider):
    bad = {"id": "call_1", "type": "function", "function": {"name": "mcp_add", "arguments": "{not json"}}
    fake_provider.on("POST", "/v1/chat/completions", tools_then_text(bad))
    answer = AgentLoop(catalog, max_iterations=10).run(dict(BODY), caller(fake_provider))
    assert answer["choices"][0]["message"]["content"] == "results: Error: the arguments of mcp_add are not valid JSON."


def test_several_calls_run_at_once(catalog, fake_provider):
    # each call returns only once both are running on the server ("alone: ..." if they never were)
    calls = [tool_call("mcp_slow_echo", {"text": "one", "seconds": 2, "together": 2}, "call_a"),
             tool_call("mcp_slow_echo", {"text": "two", "seconds": 2, "together": 2}, "call_b")]
    fake_provider.on("POST", "/v1/chat/completions", tools_then_text(*calls))
    answer = AgentLoop(catalog, max_iterations=10).run(dict(BODY), caller(fake_provider))
    assert answer["choices"][0]["message"]["content"] == "results: one | two"
    tool_messages = [m for m in fake_provider.requests[-1].json()["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["call_a", "call_b"]


def test_the_loop_stops_at_the_iteration_cap(catalog, fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", json_reply(completion(calls=[tool_call("mcp_add", {"a": 1, "b": 1})])))
    answer = AgentLoop(catalog, max_iterations=3).run(dict(BODY), caller(fake_provider))
    assert len(fake_provider.requests) == 3
    assert answer["choices"][0]["finish_reason"] == "tool_calls"
    assert len([m for m in fake_provider.requests[-1].json()["messages"] if m["role"] == "tool"]) == 2


def test_a_call_to_a_client_tool_ends_the_loop(catalog, fake_provider):
    calls = [tool_call("get_weather", {}), tool_call("mcp_add", {"a": 1, "b": 1}, "call_2")]
    fake_provider.on("POST", "/v1/chat/completions", json_reply(completion(calls=calls)))
    answer = AgentLoop(catalog, max_iterations=10).run(dict(BODY), caller(fake_provider))
    assert len(fake_provider.requests) == 1
    assert answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_a_client_tool_named_like_an_mcp_tool_stays_the_clients(catalog, fake_provider):
    own = {"type": "function", "function": {"name": "mcp_add", "parameters": {"type": "object"}}}
    fake_provider.on("POST", "/v1/chat/completions", json_reply(completion(calls=[tool_call("mcp_add", {})])))
    AgentLoop(catalog, max_iterations=10).run({**BODY, "tools": [own]}, caller(fake_provider))
    assert len(fake_provider.requests) == 1  # the client's tool: not run by the gateway
    sent = [t["function"]["name"] for t in fake_provider.requests[0].json()["tools"]]
    assert sent.count("mcp_add") == 1


def test_a_provider_error_goes_to_the_caller(catalog, fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", json_reply({"error": {"message": "quota"}}, status=429))
    with pytest.raises(UpstreamStatus) as caught:
        AgentLoop(catalog, max_iterations=10).run(dict(BODY), caller(fake_provider))
    assert caught.value.status == 429


# -- streaming ------------------------------------------------------------------------------------
def chunk(delta: dict, finish: str | None = None) -> dict:
    return {"id": "chatcmpl-s", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


TOOL_STREAM = [
    chunk({"role": "assistant", "content": "Let me add. "}),
    chunk({"tool_calls": [{"index": 0, "id": "call_s", "type": "function",
                           "function": {"name": "mcp_add", "arguments": ""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": 2, '}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"b": 3}'}}]}),
    chunk({}, "tool_calls"),
]


def text_stream(text: str) -> list[dict]:
    return [chunk({"role": "assistant", "content": text}), chunk({}, "stop")]


def streams_tools_then_text(request: Recorded) -> Reply:
    messages = request.json()["messages"]
    if messages[-1]["role"] != "tool":
        return sse_reply(TOOL_STREAM, delay=0.01)
    return sse_reply(text_stream("The sum is " + messages[-1]["content"]), delay=0.01)


def datas(events: list[bytes]) -> list[str]:
    text = b"".join(events).decode()
    assert text.endswith("\n\n")
    return [block.removeprefix("data: ") for block in text.split("\n\n") if block]


def test_stream_is_one_continuous_stream_with_one_done(catalog, fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", streams_tools_then_text)
    events = list(AgentLoop(catalog, max_iterations=10).stream({**BODY, "stream": True}, opener(fake_provider)))
    payloads = datas(events)
    assert payloads.count("[DONE]") == 1 and payloads[-1] == "[DONE]"
    contents = [c["choices"][0]["delta"].get("content") for c in map(json.loads, payloads[:-1])]
    assert [c for c in contents if c] == ["Let me add. ", "The sum is 5"]
    second = fake_provider.requests[1].json()
    assert second["stream"] is True
    assert second["messages"][1] == {"role": "assistant", "content": "Let me add. ", "tool_calls": [
        {"id": "call_s", "type": "function", "function": {"name": "mcp_add", "arguments": '{"a": 2, "b": 3}'}}]}
    assert second["messages"][2] == {"role": "tool", "tool_call_id": "call_s", "content": "5"}


def test_stream_relays_each_event_as_it_arrives(catalog, fake_provider):
    reply = sse_reply(text_stream("slow"))
    reply.pauses = [0.0] + [30.0] * (len(reply.chunks) - 1)  # the rest of the answer takes 30 s
    fake_provider.on("POST", "/v1/chat/completions", reply)
    stream = AgentLoop(catalog, max_iterations=10).stream({**BODY, "stream": True}, opener(fake_provider))
    started = time.monotonic()
    first = next(stream)
    assert time.monotonic() - started < 10  # the first event, long before the whole answer
    assert b"slow" in first
    stream.close()


def test_stream_stops_at_the_iteration_cap(catalog, fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", sse_reply(TOOL_STREAM))
    payloads = datas(list(AgentLoop(catalog, max_iterations=2).stream({**BODY, "stream": True}, opener(fake_provider))))
    assert len(fake_provider.requests) == 2
    assert payloads.count("[DONE]") == 1


def test_stream_with_a_client_tool_call_ends_after_one_iteration(catalog, fake_provider):
    own = [chunk({"tool_calls": [{"index": 0, "id": "c", "type": "function",
                                  "function": {"name": "get_weather", "arguments": "{}"}}]}), chunk({}, "tool_calls")]
    fake_provider.on("POST", "/v1/chat/completions", sse_reply(own))
    payloads = datas(list(AgentLoop(catalog, max_iterations=10).stream({**BODY, "stream": True}, opener(fake_provider))))
    assert len(fake_provider.requests) == 1
    assert payloads[-1] == "[DONE]" and len(payloads) == 3


def test_stream_error_opening_the_first_stream_raises(catalog, fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", json_reply({"error": {"message": "bad"}}, status=400))
    with pytest.raises(UpstreamStatus):
        AgentLoop(catalog, max_iterations=10).stream({**BODY, "stream": True}, opener(fake_provider))


def test_stream_error_in_a_later_iteration_ends_with_an_error_event(catalog, fake_provider):
    def reply(request: Recorded) -> Reply:
        if request.json()["messages"][-1]["role"] != "tool":
            return sse_reply(TOOL_STREAM)
        return json_reply({"error": {"message": "overloaded"}}, status=503)
    fake_provider.on("POST", "/v1/chat/completions", reply)
    payloads = datas(list(AgentLoop(catalog, max_iterations=10).stream({**BODY, "stream": True}, opener(fake_provider))))
    assert "[DONE]" not in payloads
    assert json.loads(payloads[-1])["error"]["type"] == "upstream_error"


def test_stream_hides_the_usage_chunk_unless_the_client_asked(catalog, fake_provider):
    usage = {"id": "u", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    fake_provider.on("POST", "/v1/chat/completions", sse_reply([*text_stream("hi"), usage]))
    body = {**BODY, "stream": True}
    plain = datas(list(AgentLoop(catalog, max_iterations=10).stream(body, opener(fake_provider))))
    assert not any('"usage"' in p for p in plain)
    asked = {**body, "stream_options": {"include_usage": True}}
    with_usage = datas(list(AgentLoop(catalog, max_iterations=10).stream(asked, opener(fake_provider))))
    assert json.loads(with_usage[-2])["usage"]["total_tokens"] == 2


def test_closing_the_stream_closes_the_provider_response(catalog, fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", sse_reply(text_stream("x" * 10) * 20, delay=0.05))
    stream = AgentLoop(catalog, max_iterations=10).stream({**BODY, "stream": True}, opener(fake_provider))
    next(stream)
    stream.close()  # what gunicorn does when the client hangs up
    assert fake_provider.aborted.wait(5)
