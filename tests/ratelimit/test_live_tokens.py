"""The token limit with the real chat completions route, the real gunicorn gateway and Redis."""

from __future__ import annotations

import requests

from tests.support.fake_provider import sse_reply

CHAT = "/v1/chat/completions"


def chunk(**fields) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", **fields}


def test_token_limit_refuses_the_request_after_a_streamed_completion(live_gateway, fake_provider, shared_redis):
    fake_provider.on("POST", "/v1/chat/completions", sse_reply([
        chunk(choices=[{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]),
        chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        chunk(choices=[], usage={"prompt_tokens": 200, "completion_tokens": 50, "total_tokens": 250}),
    ], delay=0.02))
    env = shared_redis.env(RATE_LIMIT_DEFAULT="100/minute", RATE_LIMIT_TOKENS_PER_MINUTE="200")
    gateway = live_gateway({**env, "OPENAI_API_URL": fake_provider.url + "/v1", "OPENAI_API_KEY": "sk-test"})
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}

    streamed = requests.post(gateway.url + CHAT, json=body, headers={"Connection": "close"}, timeout=10)
    assert streamed.status_code == 200
    assert streamed.headers["Content-Type"].startswith("text/event-stream")
    assert streamed.text.rstrip().endswith("data: [DONE]")  # 250 tokens, known only at the end

    refused = requests.post(gateway.url + CHAT, json=body, headers={"Connection": "close"}, timeout=10)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "token_limit_exceeded"
    assert refused.headers["X-RateLimit-Limit-Tokens"] == "200"
    assert refused.headers["X-RateLimit-Remaining-Tokens"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert len(fake_provider.requests) == 1  # the refused request never reached the provider
