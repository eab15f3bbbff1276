"""The count answered late (app/late_checks.py): the model-calling views let the rate limits' script
go to Redis as the request starts and wait for its answer only where they call out. A provider
never hears of a request before its count is answered, nor of one over the limit; a refusal still
wins over the view's own error; every other view, and a big body, waits for the count first."""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from flask import request

from app import late_checks
from app.errors import RateLimited
from tests.ratelimit.test_live import started
from tests.support.fake_provider import json_reply, sse_reply

CHAT = "/v1/chat/completions"
BODY = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
ANSWER = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


class HeldRedis:
    """A TCP relay in front of Redis whose answers can be held back: `hold()`, then `asked` is set
    when a command arrives while held, and `release()` lets the answers through."""

    def __init__(self, port: int = 6379):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.redis_port = port
        self.open = threading.Event()
        self.open.set()
        self.asked = threading.Event()
        self.ends: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self) -> None:
        self.asked.clear()
        self.open.clear()

    def release(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.open.set()
        self.listener.close()

    def drop(self) -> None:
        """Close every connection, answers held back unsent (a Redis lost mid-call)."""
        for end in self.ends:
            end.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.redis_port))
            self.ends += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, asking: bool) -> None:
        try:
            while data := source.recv(65536):
                if asking and not self.open.is_set():
                    self.asked.set()
                if not asking:
                    self.open.wait(30)
                    if target.fileno() < 0:  # dropped meanwhile
                        return
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                end.close()


@pytest.fixture
def held_redis():
    relay = HeldRedis()
    yield relay
    relay.close()


def test_a_provider_hears_of_a_request_only_once_its_count_is_answered_and_never_over_the_limit(
        live_gateway, shared_redis, fake_provider, held_redis):
    fake_provider.on("POST", CHAT, json_reply(ANSWER))
    env = shared_redis.env(RATE_LIMIT_DEFAULT="3/minute", OPENAI_API_URL=fake_provider.url + "/v1",
                           OPENAI_API_KEY="sk-test")
    env["RATE_LIMIT_STORAGE_URI"] = f"redis://127.0.0.1:{held_redis.port}/0"
    gateway = started(live_gateway(env, workers=1), 1)

    def chat(**extra) -> object:
        return requests.post(gateway.url + CHAT, json={**BODY, **extra}, timeout=30)

    assert chat().status_code == 200  # the script is loaded in Redis by now
    held_redis.hold()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(chat)
        assert held_redis.asked.wait(10), "the count never reached Redis"
        # the count is out and unanswered: the provider must not hear of the request meanwhile
        assert not pending.done() and len(fake_provider.requests) == 1
        threading.Event().wait(0.3)  # time for a request sent too early to arrive
        assert len(fake_provider.requests) == 1
        held_redis.release()
        served = pending.result(timeout=30)
    assert served.status_code == 200 and served.headers["X-RateLimit-Remaining"] == "1"
    assert len(fake_provider.requests) == 2

    assert chat().status_code == 200
    fake_provider.on("POST", CHAT, sse_reply([{"choices": []}]))
    for extra in ({}, {"stream": True}):
        refused = chat(**extra)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert len(fake_provider.requests) == 3  # the refused ones never reached it


def test_a_redis_lost_while_the_count_is_out_is_a_503_when_the_limits_fail_closed(
        live_gateway, shared_redis, fake_provider, held_redis):
    fake_provider.on("POST", CHAT, json_reply(ANSWER))
    env = shared_redis.env(RATE_LIMIT_DEFAULT="100/minute", RATE_LIMIT_FAIL_OPEN="false",
                           OPENAI_API_URL=fake_provider.url + "/v1", OPENAI_API_KEY="sk-test")
    env["RATE_LIMIT_STORAGE_URI"] = f"redis://127.0.0.1:{held_redis.port}/0"
    gateway = started(live_gateway(env, workers=1), 1)
    assert requests.post(gateway.url + CHAT, json=BODY, timeout=30).status_code == 200
    held_redis.hold()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(requests.post, gateway.url + CHAT, json=BODY, timeout=30)
        assert held_redis.asked.wait(10), "the count never reached Redis"
        held_redis.drop()
        refused = pending.result(timeout=30)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "rate_limit_storage_unavailable"
    assert len(fake_provider.requests) == 1  # the request whose count was lost never reached it


@pytest.fixture
def refusing_app(make_app, fake_provider):
    """An app whose one request a minute (memory://) the first request spends."""
    fake_provider.on("POST", CHAT, json_reply(ANSWER))
    app = make_app({"RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_DEFAULT": "1/minute",
                    "OPENAI_API_URL": fake_provider.url + "/v1", "OPENAI_API_KEY": "sk-test"})
    assert app.test_client().post(CHAT, json=BODY).status_code == 200
    return app


def test_a_refusal_wins_over_the_views_own_error_in_the_routes_shape(refusing_app, fake_provider):
    client = refusing_app.test_client()
    broken = client.post(CHAT, data=b"{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 429 and broken.json["error"]["code"] == "rate_limit_exceeded"
    unknown = client.post(CHAT, json={**BODY, "model": "nowhere/model"})
    assert unknown.status_code == 429
    message = client.post("/v1/messages", json={"model": "anthropic/claude-3-5-haiku", "max_tokens": 5,
                                                "messages": [{"role": "user", "content": "Hi"}]})
    assert message.status_code == 429
    assert message.json["type"] == "error" and message.json["error"]["type"] == "rate_limit_error"
    assert len(fake_provider.requests) == 1


@pytest.mark.parametrize(("path", "body", "late"), [
    (CHAT, b"{}", True),
    (CHAT, b" " * (late_checks.MAX_BODY + 1) + b"{}", False),  # a big body: refused before it is parsed
    ("/v1/responses/resp_1", b"", False),  # a view that does not settle late (it may delete)
])
def test_only_a_marked_view_with_a_small_body_gets_the_count_late(refusing_app, path, body, late):
    method = "DELETE" if path.startswith("/v1/responses/") else "POST"
    with refusing_app.test_request_context(path, method=method, data=body, environ_base={"REMOTE_ADDR": "127.0.0.1"},
                                           headers={"Content-Type": "application/json"}):
        if not late:
            with pytest.raises(RateLimited):
                refusing_app.preprocess_request()  # refused before the view runs
            return
        assert refusing_app.preprocess_request() is None  # the view would run...
        with pytest.raises(RateLimited):
            late_checks.settle(request.environ)  # ...and be refused where it calls out
