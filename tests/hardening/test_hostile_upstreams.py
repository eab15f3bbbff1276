"""A hostile or broken provider cannot fill the gateway's memory or confuse its clients (issue 20,
item 7): one SSE event is bounded (CLIENT_MAX_EVENT_SIZE), a body the gateway reads whole is
bounded after decompression (CLIENT_MAX_RESPONSE_BODY_SIZE), a gzip answer is decompressed in
bounded pieces, and a redirect is a 502 that never shows where it pointed. Through the real
gunicorn gateway, the fake provider playing the hostile part."""

from __future__ import annotations

import gzip
import json

import pytest
import requests

from tests.support.fake_provider import Reply, json_reply, sse_event
from tests.support.live_gateway import GatewayLauncher

CHAT = "/v1/chat/completions"
MIB = 1024 * 1024
COMPLETION = {"id": "c", "object": "chat.completion", "model": "m",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}


@pytest.fixture(scope="module")
def gateway(shared_fake, tmp_path_factory):
    launcher = GatewayLauncher(tmp_path_factory.mktemp("hostile-upstreams"))
    yield launcher({"OPENAI_API_URL": shared_fake.url + "/v1", "OPENAI_API_KEY": "sk-provider-secret",
                    "CLIENT_MAX_EVENT_SIZE": "1MiB", "CLIENT_MAX_RESPONSE_BODY_SIZE": "1MiB"})
    launcher.stop_all()


def chat(gateway, *, stream: bool = False) -> requests.Response:
    return requests.post(gateway.url + CHAT, timeout=30, stream=stream,
                         json={"model": "openai/m", "messages": [{"role": "user", "content": "hi"}], "stream": stream})


def last_event(text: str) -> dict:
    events = [part for part in text.split("\n\n") if part.startswith("data: ")]
    return json.loads(events[-1][len("data: "):])


def test_an_event_without_an_end_is_cut_at_the_event_bound_with_an_error_event(gateway, fake):
    first = sse_event({"id": "c", "object": "chat.completion.chunk",
                       "choices": [{"index": 0, "delta": {"content": "Hi"}}]})
    endless = [b"data: " + b"x" * (64 * 1024 - 6)] + [b"x" * 64 * 1024] * 63  # 4 MiB, never a blank line
    fake.on("POST", "/v1/chat/completions", Reply(headers={"Content-Type": "text/event-stream"},
                                                  chunks=[first, *endless]))
    answer = chat(gateway, stream=True)
    assert answer.status_code == 200
    text = answer.text
    assert text.startswith(first.decode())
    error = last_event(text)["error"]
    assert error["type"] == "upstream_error" and "CLIENT_MAX_EVENT_SIZE" in error["message"]
    assert len(text) < 2 * MIB  # the endless event itself never reached the client


def test_a_gzip_bomb_is_a_502_not_a_worker_full_of_zeros(gateway, fake):
    bomb = gzip.compress(b'{"id": "c", "pad": "' + b"0" * (64 * MIB) + b'"}', compresslevel=9)
    assert len(bomb) < 100 * 1024
    fake.on("POST", "/v1/chat/completions", Reply(headers={"Content-Type": "application/json",
                                                           "Content-Encoding": "gzip"}, body=bomb))
    answer = chat(gateway)
    assert answer.status_code == 502, answer.text[:200]
    error = answer.json()["error"]
    assert error["type"] == "upstream_error" and "CLIENT_MAX_RESPONSE_BODY_SIZE" in error["message"]


def test_a_small_gzip_answer_is_still_decoded(gateway, fake):
    fake.on("POST", "/v1/chat/completions", Reply(headers={"Content-Type": "application/json",
                                                           "Content-Encoding": "gzip"},
                                                  body=gzip.compress(json.dumps(COMPLETION).encode())))
    answer = chat(gateway)
    assert answer.status_code == 200 and answer.json() == COMPLETION


def test_a_body_past_the_bound_is_a_502(gateway, fake):
    huge = [b'{"id": "c", "pad": "'] + [b"0" * (64 * 1024)] * 64 + [b'"}']  # 4 MiB, chunked
    fake.on("POST", "/v1/chat/completions", Reply(headers={"Content-Type": "application/json"}, chunks=huge))
    answer = chat(gateway)
    assert answer.status_code == 502
    assert "CLIENT_MAX_RESPONSE_BODY_SIZE" in answer.json()["error"]["message"]


def test_a_declared_length_past_the_bound_is_a_502_before_the_body_is_read(gateway, fake):
    fake.on("POST", "/v1/chat/completions", json_reply({"pad": "0" * (2 * MIB)}))
    answer = chat(gateway)
    assert answer.status_code == 502
    assert "CLIENT_MAX_RESPONSE_BODY_SIZE" in answer.json()["error"]["message"]


@pytest.mark.parametrize("path", [CHAT, "/proxy/openai/chat/completions"])
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_from_the_provider_is_a_502_that_does_not_say_where(gateway, fake, path, status):
    fake.on("POST", "/v1/chat/completions", Reply(status=status, body=b"",
                                                  headers={"Location": "http://elsewhere.invalid/steal",
                                                           "Content-Type": "application/json"}))
    answer = requests.post(gateway.url + path, timeout=10, allow_redirects=False,
                           json={"model": "openai/m", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 502, (answer.status_code, answer.headers)
    assert "Location" not in answer.headers
    error = answer.json()["error"]
    assert error["code"] == "upstream_redirect" and str(status) in error["message"]
    assert "elsewhere" not in answer.text
    assert len(fake.requests) == 1  # not followed


def test_not_modified_still_passes_through_the_proxy(gateway, fake):
    fake.on("GET", "/v1/files/f-1/content", Reply(status=304, headers={"ETag": '"v1"'}))
    answer = requests.get(gateway.url + "/proxy/openai/files/f-1/content", headers={"If-None-Match": '"v1"'},
                          timeout=10)
    assert answer.status_code == 304 and answer.headers["ETag"] == '"v1"'
