"""What the fake providers of the API tests answer: Responses, Anthropic Messages and media shapes,
and event streams with named events (`event:` lines), as the real APIs send them."""

from __future__ import annotations

import json
from typing import Any

from tests.support.fake_provider import Reply

RESPONSE_USAGE = {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17,
                  "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}
# input 10 + cache creation 3 + cache read 2 = 15 prompt tokens; 4 then 9 output tokens
ANTHROPIC_START_USAGE = {"input_tokens": 10, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 2,
                         "output_tokens": 1}


def named_event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def named_sse_reply(events: list[tuple[str, Any]], *, pauses: list | None = None) -> Reply:
    return Reply(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
                 chunks=[named_event(name, data) for name, data in events], pauses=pauses)


def response_object(text: str = "Hello!", *, status: str = "completed", usage: dict | None = RESPONSE_USAGE,
                    model: str = "gpt-4o", response_id: str = "resp_abc123", output: list | None = None) -> dict:
    if output is None:
        output = [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": text, "annotations": []}]}] if text else []
    return {"id": response_id, "object": "response", "created_at": 1700000000, "status": status, "model": model,
            "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "error": None,
            "incomplete_details": None, "instructions": None, "metadata": {}, "temperature": 1.0, "top_p": 1.0,
            "usage": usage}


def response_events(words: list[str]) -> list[tuple[str, Any]]:
    """A Responses stream: created, one output_text delta per word, completed (with usage)."""
    events: list[tuple[str, Any]] = [
        ("response.created", {"type": "response.created", "sequence_number": 0,
                              "response": response_object("", status="in_progress", usage=None)})]
    for index, word in enumerate(words, start=1):
        events.append(("response.output_text.delta", {
            "type": "response.output_text.delta", "sequence_number": index, "item_id": "msg_1", "output_index": 0,
            "content_index": 0, "delta": word, "logprobs": []}))
    events.append(("response.completed", {"type": "response.completed", "sequence_number": len(words) + 1,
                                          "response": response_object("".join(words))}))
    return events


def anthropic_message(text: str = "Hello!", *, model: str = "claude-sonnet-4-5", content: list | None = None,
                      usage: dict | None = None) -> dict:
    return {"id": "msg_01", "type": "message", "role": "assistant", "model": model,
            "content": content if content is not None else [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": usage or {**ANTHROPIC_START_USAGE, "output_tokens": 9}}


def anthropic_events(words: list[str], *, model: str = "claude-sonnet-4-5") -> list[tuple[str, Any]]:
    """A Messages stream: message_start (usage so far), ping, one text block, message_delta (final
    output tokens), message_stop."""
    start = anthropic_message(model=model, content=[], usage=ANTHROPIC_START_USAGE)
    start["stop_reason"] = None
    events: list[tuple[str, Any]] = [
        ("message_start", {"type": "message_start", "message": start}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
    ]
    events += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": word}}) for word in words]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 9}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events
