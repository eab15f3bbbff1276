"""The real gunicorn gateway, a real fake provider, and the real `openai` SDK as the client."""

from __future__ import annotations

import json
import time

import openai
import pytest
import requests

from tests.chat.conftest import CLIENT_TIMEOUT, QUICK_STOP
from tests.support.fake_provider import Reply, json_reply, sse_event, sse_reply
from tests.support.gated import Gated

CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "hi"}]
USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def completion(content="Hello!", **extra):
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": USAGE, **extra}


def chunk(content=None, finish=None, **delta):
    if content is not None:
        delta["content"] = content
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


USAGE_CHUNK = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
               "choices": [], "usage": USAGE}


def test_create_forwards_everything_and_returns_the_provider_bytes(sdk, fake):
    body = completion(system_fingerprint="fp_1", provider_extra={"kept": True})
    fake.on("POST", "/v1/chat/completions", json_reply(body))
    messages = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "reasoning_content": "thinking...",
         "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"},
                         "extra_content": {"google": {"thought_signature": "sig=="}}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    raw = sdk.chat.completions.with_raw_response.create(
        model="openai/gpt-4o", messages=messages, temperature=0.25, top_p=0.5, seed=7, stop=["\n\n"], n=1,
        tool_choice="auto", reasoning_effort="low", parallel_tool_calls=False, user="u-1",
        response_format={"type": "text"}, max_tokens=50,
        tools=[{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
        extra_body={"top_k": 40, "reasoning_format": "parsed"})
    assert raw.http_response.content == json.dumps(body).encode()  # byte for byte
    assert raw.headers["content-type"] == "application/json"
    assert raw.parse().choices[0].message.content == "Hello!"

    sent = fake.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-provider-secret"  # the client's key never leaves
    upstream = sent.json()
    assert upstream["model"] == "gpt-4o"
    assert upstream["messages"] == messages
    expected = {"temperature": 0.25, "top_p": 0.5, "seed": 7, "stop": ["\n\n"], "n": 1, "tool_choice": "auto",
                "reasoning_effort": "low", "parallel_tool_calls": False, "user": "u-1", "max_tokens": 50,
                "response_format": {"type": "text"}, "top_k": 40, "reasoning_format": "parsed"}
    assert {k: upstream[k] for k in expected} == expected
    assert "stream_options" not in upstream


def test_provider_query_parameter_routes_a_bare_model(gateway, fake):
    fake.on("POST", "/v1/chat/completions", json_reply(completion()))
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key="k", max_retries=0,
                        default_query={"provider": "openai"})
    sdk.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert fake.requests[-1].json()["model"] == "gpt-4o-mini"


def test_stream_with_include_usage_passes_usage_and_done(sdk, gateway, fake):
    fake.on("POST", "/v1/chat/completions",
            sse_reply([chunk("Hel", role="assistant"), chunk("lo"), chunk(finish="stop"), USAGE_CHUNK]))
    stream = sdk.chat.completions.create(model="openai/gpt-4o", messages=USER, stream=True,
                                         stream_options={"include_usage": True})
    parts = list(stream)
    assert "".join(p.choices[0].delta.content or "" for p in parts if p.choices) == "Hello"
    assert parts[-1].choices == [] and parts[-1].usage.total_tokens == 10
    assert fake.requests[-1].json()["stream_options"] == {"include_usage": True}

    raw = requests.post(gateway.url + CHAT, json={"model": "openai/gpt-4o", "messages": USER, "stream": True,
                                                   "stream_options": {"include_usage": True}}, timeout=10)
    assert raw.headers["Content-Type"].startswith("text/event-stream")
    assert raw.headers["Cache-Control"] == "no-cache" and raw.headers["X-Accel-Buffering"] == "no"
    assert raw.content.endswith(b"data: [DONE]\n\n")
    assert raw.content.count(b"data: ") == 5


def test_stream_without_include_usage_hides_the_usage_chunk_but_asks_for_it(sdk, fake):
    fake.on("POST", "/v1/chat/completions", sse_reply([chunk("Hi", role="assistant"), chunk(finish="stop"),
                                                       USAGE_CHUNK]))
    parts = list(sdk.chat.completions.create(model="openai/gpt-4o", messages=USER, stream=True))
    assert len(parts) == 2 and all(p.choices for p in parts) and all(p.usage is None for p in parts)
    assert fake.requests[-1].json()["stream_options"] == {"include_usage": True}


def test_providers_that_reject_stream_options_get_none(sdk, fake):
    fake.on("POST", "/mistral/chat/completions", sse_reply([chunk("Hi"), {**chunk(finish="stop"), "usage": USAGE}]))
    parts = list(sdk.chat.completions.create(model="mistral/mistral-small", messages=USER, stream=True,
                                             stream_options={"include_usage": True}))
    assert parts[-1].usage.total_tokens == 10  # what mistral sends passes on
    assert "stream_options" not in fake.requests[-1].json()


def test_tool_call_round_trip(sdk, fake):
    tool_call = {"id": "call_9", "type": "function", "function": {"name": "get_weather",
                                                                  "arguments": '{"city": "Oslo"}'},
                 "extra_content": {"google": {"thought_signature": "abc"}}}
    first = {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o", "usage": USAGE,
             "choices": [{"index": 0, "finish_reason": "tool_calls",
                          "message": {"role": "assistant", "content": None, "tool_calls": [tool_call]}}]}

    def answer(recorded):
        last = recorded.json()["messages"][-1]
        return json_reply(completion(f"It is {last['content']}") if last["role"] == "tool" else first)

    fake.on("POST", "/v1/chat/completions", answer)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    messages = [{"role": "user", "content": "Weather in Oslo?"}]
    reply = sdk.chat.completions.create(model="openai/gpt-4o", messages=messages, tools=tools)
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Oslo"}

    messages += [reply.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    final = sdk.chat.completions.create(model="openai/gpt-4o", messages=messages, tools=tools)
    assert final.choices[0].message.content == "It is sunny"
    upstream = fake.requests[-1].json()["messages"]
    assert upstream[1]["tool_calls"][0]["extra_content"] == {"google": {"thought_signature": "abc"}}
    assert upstream[2] == {"role": "tool", "tool_call_id": "call_9", "content": "sunny"}


def test_streamed_tool_call_arrives_intact(sdk, fake):
    deltas = [chunk(role="assistant", tool_calls=[{"index": 0, "id": "call_1", "type": "function",
                                                    "function": {"name": "lookup", "arguments": ""}}]),
              chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"q": '}}]),
              chunk(tool_calls=[{"index": 0, "function": {"arguments": '"x"}'}}]),
              chunk(finish="tool_calls")]
    fake.on("POST", "/v1/chat/completions", sse_reply(deltas))
    parts = list(sdk.chat.completions.create(model="openai/gpt-4o", messages=USER, stream=True))
    calls = [c for p in parts for c in (p.choices[0].delta.tool_calls or [])]
    assert calls[0].function.name == "lookup"
    assert "".join(c.function.arguments or "" for c in calls) == '{"q": "x"}'


def test_image_parts_reach_a_vision_provider_unchanged(sdk, fake):
    fake.on("POST", "/v1/chat/completions", json_reply(completion("a cat")))
    content = [{"type": "text", "text": "what is it?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}]
    reply = sdk.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": content}])
    assert reply.choices[0].message.content == "a cat"
    assert fake.requests[-1].json()["messages"][0]["content"] == content


def test_image_parts_with_vision_off_are_a_clear_400(live_gateway, fake):
    gateway = live_gateway({"OPENAI_API_URL": fake.url + "/v1", "OPENAI_API_KEY": "sk", **QUICK_STOP})
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key="k", max_retries=0)
    content = [{"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}}]
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": content}])
    assert "ENABLE_VISION" in caught.value.message
    assert fake.requests == []


def test_sdk_error_classes(sdk, fake):
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "wizard", "content": "x"}])
    assert "messages.0.role" in bad.value.message
    with pytest.raises(openai.PermissionDeniedError) as denied:
        sdk.chat.completions.create(model="openai/forbidden", messages=USER)
    assert "not allowed" in denied.value.message

    not_found = {"error": {"message": "The model `gpt-9` does not exist", "type": "invalid_request_error",
                           "code": "model_not_found"}}
    fake.on("POST", "/v1/chat/completions", json_reply(not_found, 404))
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.chat.completions.create(model="openai/gpt-9", messages=USER)
    assert missing.value.body == not_found["error"]  # the provider's own error, passed through

    limited = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
    fake.on("POST", "/v1/chat/completions", json_reply(limited, 429, headers={"Retry-After": "1"}))
    with pytest.raises(openai.RateLimitError) as throttled:
        sdk.chat.completions.create(model="openai/gpt-4o", messages=USER)
    assert throttled.value.message.startswith("Error code: 429") and "Rate limit reached" in throttled.value.message
    with pytest.raises(openai.RateLimitError):  # before a stream starts: the status, as JSON
        sdk.chat.completions.create(model="openai/gpt-4o", messages=USER, stream=True)

    with pytest.raises(openai.InternalServerError) as unreachable:
        sdk.chat.completions.create(model="groq/llama-3", messages=USER)
    assert unreachable.value.status_code == 502 and unreachable.value.body["type"] == "upstream_unreachable"

    fake.on("POST", "/v1/chat/completions", json_reply(completion(), hang=CLIENT_TIMEOUT + 1))
    with pytest.raises(openai.InternalServerError) as slow:
        sdk.chat.completions.create(model="openai/gpt-4o", messages=USER)
    assert slow.value.status_code == 504 and slow.value.body["type"] == "upstream_timeout"


def test_error_status_before_a_stream_is_json_not_an_event_stream(gateway, fake):
    fake.on("POST", "/v1/chat/completions", json_reply({"error": {"message": "bad key"}}, 401))
    answer = requests.post(gateway.url + CHAT, json={"model": "openai/gpt-4o", "messages": USER, "stream": True},
                           timeout=10)
    assert answer.status_code == 401
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {"error": {"message": "bad key"}}


def test_events_are_relayed_as_they_arrive(gateway, fake):
    gated = Gated([sse_event(chunk(str(i))) for i in range(4)] + [b"data: [DONE]\n\n"])
    fake.on("POST", "/v1/chat/completions", Reply(headers={"Content-Type": "text/event-stream"}, chunks=gated))
    seen = []
    with requests.post(gateway.url + CHAT, json={"model": "openai/gpt-4o", "messages": USER, "stream": True},
                       stream=True, timeout=30) as answer:
        for line in answer.iter_lines(chunk_size=1):
            if line.startswith(b"data: "):
                gated.received[len(seen)].set()  # the provider may send the next event now
                seen.append(line)
    assert len(seen) == 5 and seen[-1] == b"data: [DONE]"
    assert not gated.held_back  # every event reached the client before the provider sent the next


def test_a_long_stream_is_not_cut_by_the_client_timeout(sdk, fake):
    events = [chunk(str(i)) for i in range(8)]
    fake.on("POST", "/v1/chat/completions", sse_reply(events, delay=CLIENT_TIMEOUT / 5))  # ~1.6 x CLIENT_TIMEOUT
    parts = list(sdk.chat.completions.create(model="openai/gpt-4o", messages=USER, stream=True))
    assert "".join(p.choices[0].delta.content for p in parts) == "01234567"


def test_a_stall_mid_stream_ends_with_one_error_event(gateway, fake):
    chunks = [sse_event(chunk("a")), sse_event(chunk("b")), b"data: [DONE]\n\n"]
    fake.on("POST", "/v1/chat/completions", Reply(headers={"Content-Type": "text/event-stream"}, chunks=chunks,
                                                  pauses=[0, CLIENT_TIMEOUT + 1, 0]))
    answer = requests.post(gateway.url + CHAT, json={"model": "openai/gpt-4o", "messages": USER, "stream": True},
                           timeout=15)
    assert answer.status_code == 200
    events = [e for e in answer.content.split(b"\n\n") if e]
    assert len(events) == 2 and json.loads(events[0][6:])["choices"][0]["delta"]["content"] == "a"
    error = json.loads(events[1][6:])["error"]
    assert error["type"] == "upstream_timeout" and "openai" in error["message"]


def test_client_disconnect_closes_the_provider_connection(gateway, fake):
    fake.on("POST", "/v1/chat/completions", sse_reply([chunk(str(i)) for i in range(100)], delay=0.1))
    answer = requests.post(gateway.url + CHAT, json={"model": "openai/gpt-4o", "messages": USER, "stream": True},
                           stream=True, timeout=10)
    lines = answer.iter_lines(chunk_size=1)
    assert next(lines).startswith(b"data: {")
    hung_up = time.monotonic()
    answer.close()  # a streamed response that is not read to the end closes its connection
    assert fake.aborted.wait(5), "the provider kept streaming to nobody"
    assert time.monotonic() - hung_up < 1.5


def test_legacy_completions_stream_and_embeddings_pass_through(sdk, fake):
    fake.on("POST", "/v1/completions", sse_reply([
        {"id": "cmpl-1", "object": "text_completion", "choices": [{"index": 0, "text": "Once", "finish_reason": None}]},
        {"id": "cmpl-1", "object": "text_completion", "choices": [], "usage": USAGE}]))
    parts = list(sdk.completions.create(model="openai/gpt-3.5-turbo-instruct", prompt="Tell", stream=True))
    assert [p.choices[0].text for p in parts] == ["Once"]  # usage chunk hidden: not asked for
    assert fake.requests[-1].json()["prompt"] == "Tell"

    vectors = {"object": "list", "model": "text-embedding-3-small",
               "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}],
               "usage": {"prompt_tokens": 2, "total_tokens": 2}}
    fake.on("POST", "/v1/embeddings", json_reply(vectors))
    result = sdk.embeddings.create(model="openai/text-embedding-3-small", input=["hello"], encoding_format="float",
                                   dimensions=2)
    assert result.data[0].embedding == [0.5, -0.25]
    assert fake.requests[-1].json() == {"model": "text-embedding-3-small", "input": ["hello"],
                                        "encoding_format": "float", "dimensions": 2}


def test_body_errors_on_the_wire(gateway):
    too_big = requests.post(gateway.url + CHAT, data=b'{"model": "' + b"x" * (11 * 1024 * 1024) + b'"}',
                            headers={"Content-Type": "application/json"}, timeout=20)
    assert too_big.status_code == 413 and too_big.json()["error"]["type"] == "invalid_request_error"
    text = requests.post(gateway.url + CHAT, data="hello", headers={"Content-Type": "text/plain"}, timeout=5)
    assert text.status_code == 415 and text.headers["Content-Type"] == "application/json"
    broken = requests.post(gateway.url + CHAT, data="{nope", headers={"Content-Type": "application/json"}, timeout=5)
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]["message"]
