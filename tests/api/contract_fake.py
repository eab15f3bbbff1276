"""One fake for every provider of the contract test: it answers each endpoint the gateway may call
with a body of the shape the real API has (an event stream when the request asks for one)."""

from __future__ import annotations

import json

from tests.api.shapes import anthropic_events, anthropic_message, named_sse_reply, response_events, response_object
from tests.support.fake_provider import FakeProvider, Recorded, Reply, json_reply, sse_reply

COMPLETION = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
              "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hi"}}],
              "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
CHUNK = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None}]}
MODELS = {"object": "list", "data": [{"id": "m-1", "object": "model", "created": 1, "owned_by": "someone"}]}


def _asks_stream(recorded: Recorded) -> bool:
    if recorded.headers.get("content-type", "").startswith("multipart/"):
        return b'name="stream"\r\n\r\ntrue' in recorded.body
    try:
        body = json.loads(recorded.body or b"{}")
    except ValueError:
        return False
    return isinstance(body, dict) and (body.get("stream") is True or body.get("stream_format") == "sse")


def answer(recorded: Recorded) -> Reply:
    path, stream = recorded.path, _asks_stream(recorded)
    if path.endswith("/messages/count_tokens"):
        return json_reply({"input_tokens": 7})
    if path.endswith("/messages"):
        return named_sse_reply(anthropic_events(["Hi"])) if stream else json_reply(anthropic_message())
    if "/responses" in path:
        if recorded.method == "DELETE":
            return json_reply({"id": "resp_1", "object": "response", "deleted": True})
        return named_sse_reply(response_events(["Hi"])) if stream else json_reply(response_object())
    if path.endswith("/chat/completions"):
        return sse_reply([CHUNK]) if stream else json_reply(COMPLETION)
    if path.endswith("/completions"):
        return sse_reply([{"id": "c", "object": "text_completion", "choices": [{"text": "Hi", "index": 0}]}]) \
            if stream else json_reply({"id": "c", "object": "text_completion", "choices": [{"text": "Hi"}]})
    if path.endswith("/embeddings"):
        return json_reply({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}]})
    if path.endswith("/images/generations"):
        return sse_reply([{"type": "image_generation.completed", "b64_json": "eA=="}], done=False) if stream \
            else json_reply({"created": 1, "data": [{"b64_json": "eA=="}]})
    if path.endswith("/audio/speech"):
        return sse_reply([{"type": "speech.audio.done"}], done=False) if stream \
            else Reply(headers={"Content-Type": "audio/mpeg"}, body=b"ID3\x04fake-mp3")
    if path.endswith("/audio/transcriptions"):
        return sse_reply([{"type": "transcript.text.done", "text": "Hi"}], done=False) if stream \
            else json_reply({"text": "Hi"})
    if path.endswith("/audio/translations"):  # never streams
        return json_reply({"text": "Hi"})
    if path.endswith("/moderations"):
        return json_reply({"id": "modr-1", "results": [{"flagged": False}]})
    if recorded.method == "GET" and path.endswith(("/models", "/models/search")):
        return json_reply({**MODELS, "success": True, "result": [{"name": "@cf/m"}], "models": [{"name": "m"}]})
    return json_reply({"ok": True})


def contract_fake() -> FakeProvider:
    fake = FakeProvider()
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
        fake.on(method, "*", answer)
    return fake.start()
