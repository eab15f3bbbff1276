"""Where each API carries usage and tool calls, normalised to prompt/completion/total tokens."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from app.chat.usage import ANTHROPIC_USAGE, MEDIA_USAGE, NO_USAGE, RESPONSES_USAGE, Meter
from app.signals import completion_usage, tool_called
from tests.api.shapes import anthropic_events, anthropic_message, response_events, response_object


@pytest.fixture
def heard(app):
    usages, tools = [], []

    def on_usage(sender, **kwargs):
        usages.append(kwargs["usage"])

    def on_tool(sender, **kwargs):
        tools.append(kwargs["tool_name"])

    completion_usage.connect(on_usage, sender=app)
    tool_called.connect(on_tool, sender=app)
    yield SimpleNamespace(usages=usages, tools=tools)
    completion_usage.disconnect(on_usage, sender=app)
    tool_called.disconnect(on_tool, sender=app)


def meter(app) -> Meter:
    route = SimpleNamespace(provider=SimpleNamespace(id="p"), model="m")
    return Meter(app, route, subject=None, stream=True)  # type: ignore[arg-type]


def counts(usage: dict) -> tuple[int, int, int]:
    return usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]


def test_anthropic_stream_usage_is_message_start_updated_by_message_delta(app, heard):
    m = meter(app)
    for _, event in anthropic_events(["a", "b"]):
        ANTHROPIC_USAGE.read(event, m)
    m.finish()
    assert counts(heard.usages[0]) == (15, 9, 24)
    assert heard.usages[0]["cache_read_input_tokens"] == 2  # the provider's own counts are kept


def test_anthropic_body_usage_and_tool_use_blocks(app, heard):
    m = meter(app)
    body = anthropic_message(content=[{"type": "text", "text": "let me look"},
                                      {"type": "tool_use", "id": "t1", "name": "weather", "input": {}}],
                             usage={"input_tokens": 7, "output_tokens": 3})
    ANTHROPIC_USAGE.read_body(json.dumps(body).encode(), m)
    m.finish()
    assert counts(heard.usages[0]) == (7, 3, 10) and heard.tools == ["weather"]


def test_anthropic_tool_use_in_a_stream_is_seen_once(app, heard):
    m = meter(app)
    block = {"type": "content_block_start", "index": 1,
             "content_block": {"type": "tool_use", "id": "t1", "name": "search", "input": {}}}
    assert ANTHROPIC_USAGE.may_carry(b'{"type":"content_block_start","content_block":{"type":"tool_use"}}')
    ANTHROPIC_USAGE.read(block, m)
    assert heard.tools == ["search"]


def test_responses_usage_and_function_calls_from_the_last_event(app, heard):
    m = meter(app)
    events = response_events(["x"])
    completed = events[-1][1]
    completed["response"]["output"].append({"type": "function_call", "name": "lookup", "call_id": "c1",
                                            "arguments": "{}"})
    for _, event in events:
        RESPONSES_USAGE.read(event, m)
    m.finish()
    assert counts(heard.usages[0]) == (12, 5, 17) and heard.tools == ["lookup"]
    assert not RESPONSES_USAGE.may_carry(b'event: response.output_text.delta\ndata: {"usage": {"x": 1}}\n\n')
    assert RESPONSES_USAGE.may_carry(b'event: response.completed\ndata: {"type":"response.completed"}\n\n')


def test_responses_body(app, heard):
    m = meter(app)
    RESPONSES_USAGE.read_body(json.dumps(response_object()).encode(), m)
    m.finish()
    assert counts(heard.usages[0]) == (12, 5, 17)


def test_media_usage_in_tokens_or_none(app, heard):
    m = meter(app)
    MEDIA_USAGE.read_body(b'{"text": "hi", "usage": {"type": "duration", "seconds": 3}}', m)
    m.finish()
    assert heard.usages == []  # billed by the second: no tokens to count
    m = meter(app)
    MEDIA_USAGE.read_body(b'{"data": [], "usage": {"input_tokens": 5, "output_tokens": 10, "total_tokens": 15}}', m)
    MEDIA_USAGE.read_body(b"ID3\x00\x01 an mp3", m)  # a file: nothing to read, nothing raised
    m.finish()
    assert counts(heard.usages[0]) == (5, 10, 15)


def test_no_usage(app, heard):
    m = meter(app)
    NO_USAGE.read_body(b'{"input_tokens": 42}', m)
    m.finish()
    assert heard.usages == []
