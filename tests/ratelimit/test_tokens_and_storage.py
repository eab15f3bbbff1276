"""The token budget and an unreachable storage, through the real chat endpoint (in-process app,
a real fake provider over HTTP, real API-key auth). The provider reports as usage the number the
test writes as the user's message, so each request's cost is what the test chose."""

from __future__ import annotations

import json

import pytest

from tests.support.fake_provider import FakeProvider, Recorded, Reply, json_reply, sse_reply

CHAT = "/v1/chat/completions"
KEYS = {"alice": "alice-key-0001", "bob": "bob-key-0002"}


def usage(total: int) -> dict:
    return {"prompt_tokens": 1, "completion_tokens": total - 1, "total_tokens": total}


def provider_reply(recorded: Recorded) -> Reply:
    body = recorded.json()
    total = int(body["messages"][0]["content"])
    if body.get("stream"):
        chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}
        return sse_reply([chunk, {"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": usage(total)}])
    return json_reply({"id": "c", "object": "chat.completion", "usage": usage(total),
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}}]})


@pytest.fixture
def provider(fake_provider: FakeProvider) -> FakeProvider:
    return fake_provider.on("POST", "/v1/chat/completions", provider_reply)


@pytest.fixture
def token_app(make_app, provider):
    def build(**settings: str):
        return make_app({"RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_DEFAULT": "100/minute",
                         "RATE_LIMIT_TOKENS_PER_MINUTE": "100", "OPENAI_API_URL": provider.url + "/v1",
                         "OPENAI_API_KEY": "sk-test", **settings})
    return build


def chat(client, tokens: int, *, stream: bool = False, key: str | None = None, **kwargs):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": str(tokens)}], "stream": stream}
    return client.post(CHAT, json=body, headers=headers, **kwargs)


def test_tokens_are_charged_after_the_fact_and_refuse_the_next_request(token_app, provider):
    client = token_app().test_client()
    assert chat(client, 60).status_code == 200  # 60 used
    second = chat(client, 60)  # 120 used: over, but known only now
    assert second.status_code == 200 and second.headers["X-RateLimit-Remaining"] == "98"
    refused = chat(client, 1)
    assert refused.status_code == 429
    error = refused.json["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "token_limit_exceeded"
    assert "100 tokens per minute" in error["message"]
    assert refused.headers["X-RateLimit-Limit-Tokens"] == "100"
    assert refused.headers["X-RateLimit-Remaining-Tokens"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert len(provider.requests) == 2  # the refused request never reached the provider


def test_tokens_of_a_stream_are_charged_when_it_ends_even_when_the_usage_chunk_is_hidden(token_app):
    client = token_app().test_client()
    streamed = chat(client, 150, stream=True)
    assert streamed.status_code == 200 and streamed.data.endswith(b"data: [DONE]\n\n")
    assert b'"usage"' not in streamed.data  # the client did not ask for it
    assert chat(client, 1).status_code == 429


def test_tokens_of_a_stream_are_charged_to_its_client_address(token_app):
    """Without auth the stream's usage, known after its request is gone, counts for its address."""
    client = token_app().test_client()
    one, two = {"REMOTE_ADDR": "192.0.2.1"}, {"REMOTE_ADDR": "192.0.2.2"}
    assert chat(client, 150, stream=True, environ_base=one).data.endswith(b"data: [DONE]\n\n")
    assert chat(client, 1, environ_base=one).status_code == 429
    assert chat(client, 1, environ_base=two).status_code == 200


def test_below_the_token_limit_requests_pass(token_app):
    client = token_app().test_client()
    # 33, 66, 99 used: the fourth still passes (99 < 100) and brings it to 132.
    assert [chat(client, 33).status_code for _ in range(5)] == [200, 200, 200, 200, 429]


def test_tokens_are_per_authenticated_subject(token_app):
    client = token_app(AUTH_ENABLE="true", AUTH_API_KEYS=",".join(KEYS.values()), AUTH_OIDC_ISSUER="").test_client()
    streamed = chat(client, 500, stream=True, key=KEYS["alice"])
    assert streamed.status_code == 200 and streamed.data.endswith(b"data: [DONE]\n\n")
    assert chat(client, 1, key=KEYS["bob"]).status_code == 200  # same address, another subject
    assert chat(client, 1, key=KEYS["alice"]).status_code == 429


def test_tokens_are_counted_in_redis(token_app, shared_redis):
    client = token_app(**shared_redis.env()).test_client()
    streamed = chat(client, 101, stream=True)
    assert streamed.status_code == 200 and streamed.data.endswith(b"data: [DONE]\n\n")
    # A second app (another worker or host) on the same storage sees the charge.
    other = token_app(**shared_redis.env()).test_client()
    assert chat(other, 1).status_code == 429


@pytest.fixture
def unreachable_storage(short_dir):
    """A Redis URL where nothing listens: a socket file in an empty directory of the test's own."""
    def settings(**extra: str) -> dict[str, str]:
        return {"RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_DEFAULT": "1/minute",
                "RATE_LIMIT_STORAGE_URI": f"redis+unix://{short_dir}/no-redis.sock", **extra}
    return settings


def rate_limit_log(err: str) -> list[dict]:
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [entry for entry in lines if entry["logger"] == "gateway.ratelimit" and entry["level"] != "info"]


def test_storage_unreachable_fail_open_serves_and_logs_once(make_app, unreachable_storage, capsys):
    client = make_app(unreachable_storage()).test_client()
    responses = [client.get("/openapi.yaml") for _ in range(5)]
    assert [r.status_code for r in responses] == [200] * 5  # the 1/minute limit cannot be enforced
    assert all("X-RateLimit-Limit" not in r.headers for r in responses)
    err = capsys.readouterr().err
    alarms = rate_limit_log(err)
    assert len(alarms) == 1  # loud, but not once per request
    assert alarms[0]["level"] == "error"
    assert "serving WITHOUT rate limits" in alarms[0]["message"]
    assert "Traceback" not in err and "Swallowing" not in err  # flask-limiter's own lines are folded in


def test_storage_unreachable_fail_closed_answers_503(make_app, unreachable_storage, capsys):
    client = make_app(unreachable_storage(RATE_LIMIT_FAIL_OPEN="false")).test_client()
    refused = client.get("/openapi.yaml")
    assert refused.status_code == 503
    assert refused.headers["Content-Type"] == "application/json"
    assert refused.json["error"]["type"] == "service_unavailable"
    assert client.get("/health").status_code == 200
    assert [entry["level"] for entry in rate_limit_log(capsys.readouterr().err)] == ["error"]


def test_a_charge_the_storage_refuses_never_breaks_the_stream(make_app, provider, unreachable_storage, capsys):
    client = make_app(unreachable_storage(RATE_LIMIT_TOKENS_PER_MINUTE="100", OPENAI_API_URL=provider.url + "/v1",
                                          OPENAI_API_KEY="sk-test")).test_client()
    streamed = chat(client, 50, stream=True)
    assert streamed.status_code == 200 and streamed.data.endswith(b"data: [DONE]\n\n")
    assert [entry["level"] for entry in rate_limit_log(capsys.readouterr().err)] == ["error"]
