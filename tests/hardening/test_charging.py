"""Every path that calls a model is charged (issue 20, item 2): /proxy completions by the usage
in their answers, read as they are relayed; a stream cut before its usage (the client hung up,
the provider cut it) or an answer with no usage by an estimate marked `estimated`. Through the
real gunicorn gateway with a token budget (RATE_LIMIT_TOKENS_PER_MINUTE=100) and the usage
ledger on: each test uses its own API key, so its own budget, and shows a charge as the 429 of
that key's next request and as the usage on its access line."""

from __future__ import annotations

import hashlib
import json
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest
import requests

from tests.hardening.raw_http import connect
from tests.support.fake_provider import Reply, json_reply, sse_event, sse_reply
from tests.support.gateway_log import access_lines
from tests.support.live_gateway import GatewayLauncher
from tests.support.polling import wait_for

CHAT = "/v1/chat/completions"
PROXY_CHAT = "/proxy/openai/chat/completions"
KEYS = [f"key-{n:02d}-abcdef" for n in range(12)]
PROMPT = "x" * 600  # about 150 tokens by the estimate: over the budget of 100 on its own


def content_chunk(text: str) -> dict:
    return {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}


USAGE_CHUNK = {"id": "c", "object": "chat.completion.chunk", "choices": [],
               "usage": {"prompt_tokens": 20, "completion_tokens": 130, "total_tokens": 150}}


class CuttingProvider:
    """Answers a stream with two events, then drops the connection without ending the body."""

    def __init__(self) -> None:
        provider = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += self.request.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                while len(body) < length:
                    body += self.request.recv(65536)
                events = sse_event(content_chunk("Hello")) + sse_event(content_chunk(" there"))
                self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                     b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(events), events))
                self.request.shutdown(socket.SHUT_RDWR)  # cut: no last chunk, no usage
                provider.cut.set()

        self.cut = threading.Event()
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def cutting() -> Iterator[CuttingProvider]:
    provider = CuttingProvider()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def gateway(shared_fake, cutting, tmp_path_factory):
    folder = tmp_path_factory.mktemp("charging")
    launcher = GatewayLauncher(folder)
    yield launcher({"OPENAI_API_URL": shared_fake.url + "/v1", "OPENAI_API_KEY": "sk-openai",
                    "GROQ_API_URL": cutting.url + "/v1", "GROQ_API_KEY": "sk-groq",
                    "AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": "", "AUTH_API_KEYS": ",".join(KEYS),
                    "RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_DEFAULT": "", "RATE_LIMIT_TOKENS_PER_MINUTE": "100",
                    "ACCOUNTS_ENABLE": "true", "DATABASE_URL": f"sqlite:///{folder}/gateway.db"})
    launcher.stop_all()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def chat_body(*, stream: bool = False, model: str = "openai/gpt-4o-mini") -> dict:
    return {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": stream}


def next_request_refused(gateway, key: str) -> bool:
    """The key's next request: 429 token_limit_exceeded once the key's tokens are charged."""
    answer = requests.get(gateway.url + "/v1/models?provider=openai", headers=auth(key), timeout=10)
    if answer.status_code == 429:
        assert answer.json()["error"]["code"] == "token_limit_exceeded"
        return True
    return False


def charged(gateway, key: str) -> bool:
    return wait_for(lambda: next_request_refused(gateway, key), 20, "the key's tokens to be charged")


def usage_line(gateway, key: str, path: str) -> dict:
    """The usage on the key's access line for `path` (waited for: a stream's line comes at its close)."""
    subject = "key:" + hashlib.sha256(key.encode()).hexdigest()[:8]

    def seen() -> list[dict]:
        return [line["usage"] for line in access_lines(gateway.logs())
                if line.get("path") == path and line.get("subject") == subject and line.get("usage")]

    return wait_for(seen, 20, f"an access line with usage for {path}")[-1]


@pytest.fixture
def provider(fake):
    return fake


def test_a_proxied_completion_is_charged_by_its_usage(gateway, provider):
    key = KEYS[0]
    provider.on("POST", "/v1/chat/completions", json_reply({
        "id": "c", "object": "chat.completion", "choices": [{"index": 0, "message": {"content": "ok"}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 100, "total_tokens": 150}}))
    answer = requests.post(gateway.url + PROXY_CHAT, headers=auth(key), timeout=10,
                           json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200
    assert charged(gateway, key)
    usage = usage_line(gateway, key, PROXY_CHAT)
    assert usage["total_tokens"] == 150 and "estimated" not in usage


def test_a_proxied_stream_is_charged_by_its_last_usage_chunk(gateway, provider):
    key = KEYS[1]
    provider.on("POST", "/v1/chat/completions", sse_reply([content_chunk("Hi"), USAGE_CHUNK]))
    answer = requests.post(gateway.url + PROXY_CHAT, headers=auth(key), timeout=10,
                           json={"model": "gpt-4o-mini", "messages": [], "stream": True,
                                 "stream_options": {"include_usage": True}})
    assert answer.status_code == 200 and '"usage"' in answer.text
    assert charged(gateway, key)


def test_a_proxied_stream_without_usage_is_charged_an_estimate(gateway, provider):
    key = KEYS[2]
    provider.on("POST", "/v1/chat/completions", sse_reply([content_chunk("Hi"), content_chunk(" there")]))
    answer = requests.post(gateway.url + PROXY_CHAT, headers=auth(key), timeout=10,
                           json={"model": "gpt-4o-mini", "stream": True,
                                 "messages": [{"role": "user", "content": PROMPT}]})
    assert answer.status_code == 200 and "usage" not in answer.text  # relayed as it came
    assert charged(gateway, key)
    usage = usage_line(gateway, key, PROXY_CHAT)
    assert usage["estimated"] is True and usage["prompt_tokens"] >= 150


def test_a_stream_the_client_hangs_up_on_is_charged_an_estimate(gateway, provider):
    key = KEYS[3]
    gate = threading.Event()
    events = [content_chunk("Hello")] + [content_chunk(" more")] * 20
    reply = sse_reply([*events, USAGE_CHUNK])
    reply.pauses = [0.0, gate] + [0.05] * (len(reply.chunks) - 2)
    provider.on("POST", "/v1/chat/completions", reply)
    body = json.dumps(chat_body(stream=True)).encode()
    with connect(gateway.port) as sock:
        sock.sendall(f"POST {CHAT} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        received = b""
        while b"Hello" not in received:
            data = sock.recv(65536)
            assert data, received
            received += data
        assert received.startswith(b"HTTP/1.1 200")
    # hung up before the usage chunk; the gateway finds out on its next writes
    gate.set()
    assert provider.aborted.wait(20)  # it dropped the provider: the usage chunk never came
    usage = usage_line(gateway, key, CHAT)
    assert usage["estimated"] is True and usage["prompt_tokens"] >= 150
    assert next_request_refused(gateway, key)


def test_a_stream_the_provider_cuts_is_charged_an_estimate(gateway, cutting):
    key = KEYS[4]
    answer = requests.post(gateway.url + CHAT, headers=auth(key), timeout=10,
                           json=chat_body(stream=True, model="groq/llama"))
    assert answer.status_code == 200
    assert "Hello" in answer.text and '"error"' in answer.text  # the cut ends the stream with an error event
    assert cutting.cut.wait(10)  # its thread may set it just after the client saw the cut
    assert charged(gateway, key)


def test_a_completion_with_usage_is_not_marked_estimated(gateway, provider):
    key = KEYS[5]
    provider.on("POST", "/v1/chat/completions", sse_reply([content_chunk("Hi"), USAGE_CHUNK]))
    answer = requests.post(gateway.url + CHAT, headers=auth(key), json=chat_body(stream=True), timeout=10)
    assert answer.status_code == 200 and answer.text.endswith("data: [DONE]\n\n")
    assert charged(gateway, key)
    usage = usage_line(gateway, key, CHAT)
    assert usage["total_tokens"] == 150 and "estimated" not in usage


def test_a_proxied_call_that_fails_is_not_charged(gateway, provider):
    key = KEYS[6]
    provider.on("POST", "/v1/chat/completions", json_reply({"error": {"message": "bad"}}, status=400))
    for _ in range(3):
        answer = requests.post(gateway.url + PROXY_CHAT, headers=auth(key), timeout=10,
                               json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]})
        assert answer.status_code == 400
    assert not next_request_refused(gateway, key)


def test_anthropic_style_usage_on_the_proxy_is_merged(gateway, provider):
    key = KEYS[7]
    events = [{"type": "message_start", "message": {"usage": {"input_tokens": 40, "output_tokens": 1}}},
              {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}},
              {"type": "message_delta", "usage": {"output_tokens": 70}}]
    provider.on("POST", "/v1/messages", Reply(headers={"Content-Type": "text/event-stream"},
                                              chunks=[sse_event(e) for e in events]))
    answer = requests.post(gateway.url + "/proxy/openai/messages", headers=auth(key), timeout=10,
                           json={"model": "claude-x", "max_tokens": 5, "messages": [], "stream": True})
    assert answer.status_code == 200
    usage = usage_line(gateway, key, "/proxy/openai/messages")
    assert usage["prompt_tokens"] == 40 and usage["completion_tokens"] == 70 and "estimated" not in usage
    assert json.loads(answer.text.split("\n\n")[0][len("data: "):])["type"] == "message_start"
