"""Chat completions through a real two-worker gunicorn: /metrics adds up to what the provider reported."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.support.fake_provider import Recorded, Reply, json_reply, sse_reply
from tests.support.live_gateway import free_port
from tests.telemetry.test_live_metrics import access_pids, scrape, telemetry_env, value, wait_for_value

PLAIN_USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
STREAM_USAGE = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
TOOL_CALL = {"id": "1", "type": "function", "function": {"name": "mcp_search", "arguments": "{}"}}
PATH = "/v1/chat/completions"


def provider_reply(recorded: Recorded) -> Reply:
    if recorded.json().get("stream"):
        chunk = {"id": "s", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}
        return sse_reply([chunk, chunk, {"id": "s", "choices": [], "usage": STREAM_USAGE}], delay=0.05)
    return json_reply({"id": "p", "object": "chat.completion", "usage": PLAIN_USAGE, "choices": [
        {"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}}]})


def chat(url: str, stream: bool) -> requests.Response:
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    response = requests.post(url + PATH, json=body, headers={"Connection": "close"}, stream=stream, timeout=20)
    response.content  # noqa: B018 -- read the whole body (the whole stream)
    return response


def test_counts_and_tokens_add_up_across_two_workers(live_gateway, fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", provider_reply)
    metrics_port = free_port()
    gateway = live_gateway(telemetry_env(metrics_port, OPENAI_API_URL=fake_provider.url + "/v1",
                                         OPENAI_API_KEY="sk-test", SERVER_WRITE_TIMEOUT="1s"), workers=2)

    plain = streams = 0
    with ThreadPoolExecutor(8) as pool:
        while plain + streams < 120:
            answers = list(pool.map(lambda stream: chat(gateway.url, stream), [False] * 12 + [True] * 8))
            assert [a.status_code for a in answers] == [200] * 20
            for answer in answers[:12]:
                assert re.fullmatch(r"gateway;dur=\d+\.\d, upstream;dur=\d+\.\d", answer.headers["Server-Timing"])
            for answer in answers[12:]:
                assert "Server-Timing" not in answer.headers
                assert answer.content.endswith(b"data: [DONE]\n\n")
            plain, streams = plain + 12, streams + 8
            time.sleep(0.2)
            if len(access_pids(gateway, PATH)) >= 2:
                break
    assert len(access_pids(gateway, PATH)) == 2, "one worker served every request"
    assert len(fake_provider.requests) == plain + streams

    route = {"provider": "openai", "request_method": "POST", "request_path": PATH}
    assert wait_for_value(metrics_port, "llm_responses_total", plain + streams, **route, status_code="200") \
        == plain + streams
    samples = scrape(metrics_port)
    model = {"provider": "openai", "model": "gpt-4o"}
    assert value(samples, "llm_usage_prompt_tokens_total", **model) == 11 * plain + 5 * streams
    assert value(samples, "llm_usage_completion_tokens_total", **model) == 7 * plain + 3 * streams
    assert value(samples, "llm_usage_total_tokens_total", **model) == 18 * plain + 8 * streams
    assert value(samples, "llm_tool_calls_total", **model, tool_type="mcp", tool_name="mcp_search") == plain
    assert value(samples, "llm_request_duration_count", **route) == plain + streams
    assert value(samples, "llm_time_to_first_token_count", **model) == streams
    assert value(samples, "llm_gateway_overhead_duration_count", request_method="POST", request_path=PATH) \
        == plain + streams
    # The streams' pauses were the provider's, not the gateway's.
    assert value(samples, "llm_gateway_overhead_duration_sum", request_method="POST", request_path=PATH) \
        < value(samples, "llm_request_duration_sum", **route) / 2
    assert "sk-test" not in requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
