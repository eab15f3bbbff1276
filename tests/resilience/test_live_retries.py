"""Retries before the first byte, on a plain env-only gateway (no GATEWAY_CONFIG: the defaults,
3 tries, 250 ms backoff), against a fake provider that fails on command."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from tests.resilience.conftest import QUICK, USER, calls_to, chat, chunk, completion
from tests.support.fake_provider import FakeProvider, Recorded, Reply, Scripted, json_reply, sse_event, sse_reply
from tests.support.gateway_log import access_lines
from tests.support.live_gateway import LiveGateway
from tests.support.polling import wait_for

SSE = {"Content-Type": "text/event-stream"}


@pytest.fixture(scope="module")
def gateway(module_live_gateway, module_fake_provider) -> LiveGateway:
    return module_live_gateway({"OPENAI_API_URL": module_fake_provider.url + "/v1", "OPENAI_API_KEY": "sk-provider",
                                **QUICK})


@pytest.fixture
def fake(module_fake_provider) -> FakeProvider:
    return module_fake_provider.reset()


def test_a_503_then_a_success_is_one_200_with_two_attempts(gateway, fake):
    fake.on("POST", "/v1/chat/completions", Scripted(json_reply({"error": {"message": "busy"}}, 503),
                                                     json_reply(completion("served"))))
    answer = chat(gateway.url, "openai/gpt-4o-mini")
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "served"
    assert answer.headers["X-Gateway-Attempts"] == "2"
    assert answer.headers["X-Gateway-Upstream"] == "openai/gpt-4o-mini"
    assert len(calls_to(fake)) == 2


def test_a_429_with_retry_after_1_waits_about_a_second(gateway, fake):
    arrivals: list[float] = []

    def timed(reply: Reply):
        def answer(recorded: Recorded) -> Reply:
            arrivals.append(time.monotonic())
            return reply
        return answer

    fake.on("POST", "/v1/chat/completions", Scripted(
        timed(json_reply({"error": {"message": "slow down"}}, 429, headers={"Retry-After": "1"})),
        timed(json_reply(completion()))))
    answer = chat(gateway.url, "openai/gpt-4o-mini")
    assert answer.status_code == 200 and answer.headers["X-Gateway-Attempts"] == "2"
    waited = arrivals[1] - arrivals[0]
    assert 0.9 <= waited < 6, waited  # Retry-After honoured, not the 250 ms backoff


def test_a_long_retry_after_is_passed_to_the_client_instead(gateway, fake):
    fake.on("POST", "/v1/chat/completions", json_reply({"error": {"message": "tomorrow"}}, 429,
                                                       headers={"Retry-After": "3600"}))
    answer = chat(gateway.url, "openai/gpt-4o-mini")
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "3600"
    assert answer.json() == {"error": {"message": "tomorrow"}}
    assert answer.headers["X-Gateway-Attempts"] == "1" and len(calls_to(fake)) == 1


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_4xx_go_to_the_client_at_once(gateway, fake, status):
    fake.on("POST", "/v1/chat/completions", json_reply({"error": {"message": f"no ({status})"}}, status))
    answer = chat(gateway.url, "openai/gpt-4o-mini")
    assert answer.status_code == status and answer.json() == {"error": {"message": f"no ({status})"}}
    assert answer.headers["X-Gateway-Attempts"] == "1" and len(calls_to(fake)) == 1


def test_every_try_failing_gives_the_last_error_after_three(gateway, fake):
    fake.on("POST", "/v1/chat/completions", json_reply({"error": {"message": "down"}}, 503))
    answer = chat(gateway.url, "openai/gpt-4o-mini")
    assert answer.status_code == 503 and answer.json() == {"error": {"message": "down"}}
    assert answer.headers["X-Gateway-Attempts"] == "3" and len(calls_to(fake)) == 3


def test_a_dropped_connection_is_retried(gateway, fake):
    fake.on("POST", "/v1/chat/completions", Scripted(Reply(drop=True), json_reply(completion())))
    answer = chat(gateway.url, "openai/gpt-4o-mini")
    assert answer.status_code == 200 and answer.headers["X-Gateway-Attempts"] == "2"


def stream_text(answer) -> tuple[list[str], list[dict]]:
    contents, errors = [], []
    for line in answer.text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            event = json.loads(line[6:])
            if "error" in event:
                errors.append(event)
            else:
                contents.append(event["choices"][0]["delta"]["content"])
    return contents, errors


@pytest.mark.parametrize("failure", [
    Reply(headers=SSE, chunks=[], cut=True),  # headers, then the connection is lost
    Reply(headers=SSE, chunks=[b": keep-alive\n\n"]),  # a clean end without a single event
], ids=["cut", "empty"])
def test_a_stream_that_fails_before_its_first_event_is_retried(gateway, fake, failure):
    fake.on("POST", "/v1/chat/completions", Scripted(failure, sse_reply([chunk("a"), chunk("b")])))
    answer = chat(gateway.url, "openai/gpt-4o-mini", stream=True)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/event-stream")
    assert answer.headers["X-Gateway-Attempts"] == "2"
    assert stream_text(answer) == (["a", "b"], []) and answer.text.endswith("data: [DONE]\n\n")
    assert len(calls_to(fake)) == 2


def test_no_retry_after_the_first_streamed_byte(gateway, fake):
    """The client holds the first event when the provider's connection breaks: the stream ends
    with one error event, and the provider (whose next answer would succeed) is not asked again."""
    gate = threading.Event()
    fake.on("POST", "/v1/chat/completions", Scripted(
        Reply(headers=SSE, chunks=[sse_event(chunk("first")), sse_event(chunk("second"))], pauses=[0, gate], cut=True),
        sse_reply([chunk("retried")])))
    with requests.post(gateway.url + "/v1/chat/completions", stream=True, timeout=20, headers={"Connection": "close"},
                       json={"model": "openai/gpt-4o-mini", "stream": True, "messages": USER}) as answer:
        assert answer.status_code == 200 and answer.headers["X-Gateway-Attempts"] == "1"
        lines = (line for line in answer.iter_lines() if line)
        assert json.loads(next(lines)[6:])["choices"][0]["delta"]["content"] == "first"  # the client has it
        gate.set()  # now the provider sends one more event and breaks off
        rest = [json.loads(line[6:]) for line in lines]
    assert rest[0]["choices"][0]["delta"]["content"] == "second"
    assert len(rest) == 2 and rest[1]["error"]["type"] == "upstream_unreachable"
    assert len(calls_to(fake)) == 1


def test_a_failure_mid_stream_ends_it_with_one_error_event(gateway, fake):
    fake.on("POST", "/v1/chat/completions", Reply(headers=SSE, chunks=[sse_event(chunk("first"))], cut=True))
    answer = chat(gateway.url, "openai/gpt-4o-mini", stream=True)
    assert answer.status_code == 200 and answer.headers["X-Gateway-Attempts"] == "1"
    contents, errors = stream_text(answer)
    assert contents == ["first"] and len(errors) == 1 and errors[0]["error"]["type"] == "upstream_unreachable"
    assert "[DONE]" not in answer.text
    assert len(calls_to(fake)) == 1  # never tried again once bytes went out


def test_the_access_line_names_the_upstream_and_the_tries(gateway, fake):
    fake.on("POST", "/v1/chat/completions", Scripted(json_reply({}, 502), json_reply(completion())))
    answer = chat(gateway.url, "openai/gpt-4o-mini", timeout=20)
    request_id = answer.headers["X-Request-ID"]

    def line() -> dict | None:
        return next((entry for entry in access_lines(gateway.logs()) if entry["request_id"] == request_id), None)

    entry = wait_for(line, 10, "the access line")
    assert (entry["upstream"], entry["attempts"], entry["provider"], entry["model"]) == (
        "openai/gpt-4o-mini", 2, "openai", "gpt-4o-mini")


def test_a_streams_headers_follow_its_first_event(gateway, fake):
    fake.on("POST", "/v1/chat/completions", Scripted(json_reply({}, 500), sse_reply([chunk("x")])))
    answer = chat(gateway.url, "openai/gpt-4o-mini", stream=True)
    assert answer.headers["X-Gateway-Attempts"] == "2" and answer.headers["X-Gateway-Upstream"] == "openai/gpt-4o-mini"


def test_an_unusual_model_name_cannot_break_the_upstream_header(gateway, fake):
    fake.on("POST", "/v1/chat/completions", json_reply(completion()))
    answer = chat(gateway.url, "openai/odd\r\nX-Injected: 1 é")
    assert answer.status_code == 200 and "X-Injected" not in answer.headers
    assert answer.headers["X-Gateway-Upstream"] == "openai/odd%0D%0AX-Injected:%201%20%C3%A9"
