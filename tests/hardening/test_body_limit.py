"""SERVER_MAX_REQUEST_BODY_SIZE holds on every route whatever the framing: 413 before anything
goes upstream, never a body silently cut at the limit (issue 20, item 6)."""

from __future__ import annotations

import json
import socket

import pytest
import requests

from tests.hardening.raw_http import assert_envelope, connect, read_response

LIMIT = 1024 * 1024  # SERVER_MAX_REQUEST_BODY_SIZE for these tests
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def gateway(shared_fake, tmp_path_factory):
    from tests.support.live_gateway import GatewayLauncher

    launcher = GatewayLauncher(tmp_path_factory.mktemp("body-limit"))
    yield launcher({"OPENAI_API_URL": shared_fake.url + "/v1", "OPENAI_API_KEY": "sk-provider-secret",
                    "SERVER_MAX_REQUEST_BODY_SIZE": str(LIMIT)})
    launcher.stop_all()


def padded_chat(size: int) -> bytes:
    """A valid chat request of `size` bytes: JSON, then whitespace (still valid JSON)."""
    body = json.dumps({"model": "openai/m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    return body + b" " * (size - len(body))


def chunked(body: bytes, piece: int = 64 * 1024) -> bytes:
    out = bytearray()
    for start in range(0, len(body), piece):
        part = body[start:start + piece]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return bytes(out + b"0\r\n\r\n")


def send(port: int, method: str, path: str, body: bytes, *, framing: str) -> tuple:
    head = f"{method} {path} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
    if framing == "chunked":
        data = (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunked(body)
    else:
        data = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    with connect(port, timeout=30) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused early: the answer is still there to read
        sock.shutdown(socket.SHUT_WR)
        return read_response(sock)


ROUTES = [("POST", CHAT), ("POST", "/v1/embeddings"), ("POST", "/proxy/openai/files"),
          ("POST", "/proxy/openai/chat/completions"), ("GET", "/health"), ("GET", "/v1/models")]


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
@pytest.mark.parametrize("method,path", ROUTES)
def test_a_body_over_the_limit_is_413_on_every_route(gateway, fake, method, path, framing):
    response = send(gateway.port, method, path, padded_chat(LIMIT + 1), framing=framing)
    assert_envelope(response, 413)
    assert "SERVER_MAX_REQUEST_BODY_SIZE" in response.json()["error"]["message"]
    assert not fake.requests  # nothing went upstream


def test_eleven_mib_chunked_to_chat_with_the_default_limit_is_413(live_gateway, fake):
    gateway = live_gateway({"OPENAI_API_URL": fake.url + "/v1", "OPENAI_API_KEY": "sk-provider-secret"})
    response = send(gateway.port, "POST", CHAT, padded_chat(11 * 1024 * 1024), framing="chunked")
    assert_envelope(response, 413)
    assert not fake.requests


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_a_body_at_the_limit_is_served_whole(gateway, fake, framing):
    body = padded_chat(LIMIT)
    response = send(gateway.port, "POST", CHAT, body, framing=framing)
    assert response.status == 200, response.body
    assert fake.requests[-1].json()["messages"] == [{"role": "user", "content": "hi"}]


def test_a_chunked_proxy_upload_reaches_the_provider_whole_with_its_length(gateway, fake):
    upload = bytes(range(256)) * 2048  # 512 KiB, not JSON: streamed through the proxy
    response = requests.post(gateway.url + "/proxy/openai/files", data=iter([upload[:1000], upload[1000:]]),
                             headers={"Content-Type": "application/octet-stream"}, timeout=30)
    assert response.status_code == 200, response.text
    received = fake.requests[-1]
    assert received.body == upload
    assert received.headers.get("content-length") == str(len(upload))


def test_expect_100_continue_gets_413_before_the_body_is_sent(gateway, fake):
    with connect(gateway.port) as sock:
        sock.sendall(f"POST {CHAT} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {LIMIT + 1}\r\nExpect: 100-continue\r\n\r\n".encode())
        assert_envelope(read_response(sock), 413)


def test_expect_100_continue_is_answered_then_served(gateway, fake):
    body = padded_chat(1000)
    with connect(gateway.port) as sock:
        sock.sendall(f"POST {CHAT} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode())
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        response = read_response(sock)
    assert response.status == 200, response.body
