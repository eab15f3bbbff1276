"""/proxy end to end: the real gunicorn (gevent) gateway in front of real local HTTP servers."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import socket
import threading

import pytest
import requests

from tests.proxy.conftest import BODY_LIMIT, ProxySetup, peak_rss_kib, raw_request, worker_pid
from tests.support.fake_provider import Recorded, Reply, json_reply, sse_reply
from tests.support.gated import Gated


def echo(recorded: Recorded) -> Reply:
    return json_reply({"method": recorded.method, "body": recorded.body.decode()}, status=201,
                      headers={"X-Provider-Trace": "t-1", "Allow": "GET, POST"})


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_each_method_reaches_the_provider_and_its_answer_comes_back(proxy_setup: ProxySetup, method: str) -> None:
    proxy_setup.provider.on(method, "/v1/things/42", echo)
    # a JSON object without a model: this gateway sets DISALLOWED_MODELS, so a body whose model cannot
    # be read (plain text) would be refused (tests/hardening/test_allow_list.py)
    body = b'{"text": "a body"}' if method in ("POST", "PUT", "PATCH") else None
    reply = requests.request(method, proxy_setup.gateway.url + "/proxy/openai/things/42?a=1&b=%2F&b=2",
                             data=body, headers={"Content-Type": "application/json"}, timeout=10)
    assert reply.status_code == 201
    assert reply.json() == {"method": method, "body": (body or b"").decode()}
    assert reply.headers["X-Provider-Trace"] == "t-1" and reply.headers["Allow"] == "GET, POST"
    [seen] = proxy_setup.provider.requests
    assert (seen.method, seen.raw_path) == (method, "/v1/things/42?a=1&b=%2F&b=2")
    assert seen.headers["authorization"] == "Bearer sk-provider-openai"


def test_head_answers_with_the_providers_headers_and_no_body(proxy_setup: ProxySetup) -> None:
    proxy_setup.provider.on("HEAD", "/v1/files/f-1", Reply(headers={"Content-Type": "application/pdf"},
                                                            body=b"x" * 1234))
    conn = http.client.HTTPConnection("127.0.0.1", proxy_setup.gateway.port, timeout=10)
    conn.request("HEAD", "/proxy/openai/files/f-1")
    reply = conn.getresponse()
    assert reply.status == 200 and reply.read() == b""
    assert reply.getheader("Content-Length") == "1234" and reply.getheader("Content-Type") == "application/pdf"
    assert proxy_setup.provider.requests[0].method == "HEAD"


def test_provider_errors_pass_through_unchanged(proxy_setup: ProxySetup) -> None:
    error = {"error": {"message": "No such file", "type": "invalid_request_error"}}
    proxy_setup.provider.on("GET", "/v1/files/missing", json_reply(error, status=404))
    reply = requests.get(proxy_setup.gateway.url + "/proxy/openai/files/missing", timeout=10)
    assert reply.status_code == 404 and reply.json() == error


def test_caller_credentials_never_reach_the_provider(proxy_setup: ProxySetup) -> None:
    proxy_setup.provider.on("POST", "/v1/audio/speech", Reply(body=b"mp3"))
    proxy_setup.provider.on("POST", "/anthropic/v1/messages", json_reply({"id": "msg_1"}))
    caller = {"Authorization": "Bearer caller-token", "Cookie": "session=caller", "x-api-key": "caller-key",
              "Proxy-Authorization": "Basic Y2FsbGVy", "Connection": "keep-alive, X-Hop", "X-Hop": "secret",
              "Keep-Alive": "timeout=5", "TE": "trailers", "X-Custom": "kept", "anthropic-beta": "tools-2024"}
    for path in ("/proxy/openai/audio/speech", "/proxy/anthropic/messages"):
        reply = requests.post(proxy_setup.gateway.url + path, data=b'{"input": "hi"}', headers=caller, timeout=10)
        assert reply.status_code == 200, reply.text
    openai, anthropic = proxy_setup.provider.requests
    for seen in (openai, anthropic):
        assert "cookie" not in seen.headers and "proxy-authorization" not in seen.headers
        assert "x-hop" not in seen.headers and "keep-alive" not in seen.headers and "te" not in seen.headers
        assert seen.headers["x-custom"] == "kept"
        assert "caller" not in json.dumps(seen.headers)
    assert openai.headers["authorization"] == "Bearer sk-provider-openai" and "x-api-key" not in openai.headers
    assert anthropic.headers["x-api-key"] == "sk-provider-anthropic" and "authorization" not in anthropic.headers
    assert anthropic.headers["anthropic-version"] == "2023-06-01"
    assert anthropic.headers["anthropic-beta"] == "tools-2024"


def test_hop_by_hop_headers_from_the_provider_stay_behind(proxy_setup: ProxySetup) -> None:
    proxy_setup.provider.on("GET", "/v1/x", Reply(body=b"ok", headers={
        "Content-Type": "text/plain", "Keep-Alive": "timeout=99", "Proxy-Authenticate": "Basic",
        "Connection": "X-Conn-Only", "X-Conn-Only": "1", "X-Kept": "yes"}))
    reply = raw_request(proxy_setup.gateway.port, b"GET /proxy/openai/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
    assert reply.status == 200 and reply.body == b"ok"
    assert reply.headers["x-kept"] == "yes" and reply.headers["content-type"] == "text/plain"
    assert "proxy-authenticate" not in reply.headers and "x-conn-only" not in reply.headers
    assert reply.headers.get("keep-alive") != "timeout=99"


def test_sse_is_relayed_event_by_event(proxy_setup: ProxySetup) -> None:
    events = [{"choices": [{"delta": {"content": word}}]} for word in ("one", "two", "three", "four")]
    gated = Gated([f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"])
    proxy_setup.provider.on("POST", "/v1/chat/completions",
                            Reply(headers={"Content-Type": "text/event-stream"}, chunks=gated))
    conn = http.client.HTTPConnection("127.0.0.1", proxy_setup.gateway.port, timeout=30)
    conn.request("POST", "/proxy/openai/chat/completions", body=b'{"model": "gpt-4o", "stream": true}',
                 headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
    reply = conn.getresponse()
    assert reply.status == 200 and reply.getheader("Content-Type") == "text/event-stream"
    assert reply.getheader("X-Accel-Buffering") == "no"
    received = b""
    while chunk := reply.read1(65536):
        received += chunk
        for index in range(received.count(b"\n\n")):
            gated.received[index].set()  # the provider may send the next event now
    assert received.split(b"\n\n")[:5] == [f"data: {json.dumps(e)}".encode() for e in events] + [b"data: [DONE]"]
    assert not gated.held_back  # every event reached the caller before the provider sent the next


def test_a_large_download_is_streamed_not_held(proxy_setup: ProxySetup) -> None:
    block = bytes(range(256)) * 256  # 64 KiB
    proxy_setup.provider.on("GET", "/v1/files/big/content",
                            Reply(headers={"Content-Type": "application/octet-stream"}, chunks=[block] * 800))
    proxy_setup.provider.on("GET", "/v1/warm", Reply(body=b"warm"))
    requests.get(proxy_setup.gateway.url + "/proxy/openai/warm", timeout=10)
    worker = proxy_setup.worker_pid()
    peak_before = peak_rss_kib(worker)
    with requests.get(proxy_setup.gateway.url + "/proxy/openai/files/big/content", stream=True, timeout=30) as reply:
        assert reply.status_code == 200
        total = sum(len(chunk) for chunk in reply.iter_content(256 * 1024))
    assert total == 800 * len(block)  # 52 MB
    grown_mib = (peak_rss_kib(worker) - peak_before) / 1024
    assert grown_mib < 20, f"worker peak memory grew {grown_mib:.1f} MiB for a 50 MiB download"


def test_a_large_upload_is_streamed_not_held(live_gateway, fake_provider) -> None:
    gateway = live_gateway({"OPENAI_API_URL": fake_provider.url + "/v1", "OPENAI_API_KEY": "sk-test",
                            "SERVER_MAX_REQUEST_BODY_SIZE": "100MiB"})
    fake_provider.on("PUT", "/v1/uploads/u-1", lambda r: json_reply({"received": len(r.body)}))
    requests.put(gateway.url + "/proxy/openai/uploads/u-1", data=b"warm", timeout=10)
    worker = worker_pid(gateway)
    peak_before = peak_rss_kib(worker)
    block = b"\x00\x01binary" * 8192
    blocks = 40 * 1024 * 1024 // len(block)
    reply = requests.put(gateway.url + "/proxy/openai/uploads/u-1", data=(block for _ in range(blocks)),
                         headers={"Content-Type": "application/octet-stream", "Connection": "close"},
                         timeout=60)  # chunked upload; no idle keep-alive to hold up the gateway's shutdown
    assert reply.status_code == 200 and reply.json() == {"received": blocks * len(block)}
    assert fake_provider.requests[-1].body[:len(block)] == block
    grown_mib = (peak_rss_kib(worker) - peak_before) / 1024
    assert grown_mib < 20, f"worker peak memory grew {grown_mib:.1f} MiB for a 40 MiB upload"


def test_a_declared_oversized_body_is_refused_before_connecting(proxy_setup: ProxySetup) -> None:
    proxy_setup.provider.on("POST", "*", json_reply({}))
    head = (b"POST /proxy/openai/files HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % (BODY_LIMIT + 1))
    reply = raw_request(proxy_setup.gateway.port, head)  # the body is never sent: the answer comes first
    assert reply.status == 413 and json.loads(reply.body)["error"]["type"] == "invalid_request_error"
    assert proxy_setup.provider.requests == []


@pytest.mark.parametrize("content_type", [b"application/octet-stream", b"application/json"])
def test_a_chunked_body_growing_past_the_limit_is_refused(proxy_setup: ProxySetup, content_type: bytes) -> None:
    proxy_setup.provider.on("POST", "*", json_reply({}))
    chunk = (b"{" if content_type == b"application/json" else b"x") * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(BODY_LIMIT // len(chunk) + 4))
    reply = raw_request(proxy_setup.gateway.port,
                        b"POST /proxy/openai/files HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nContent-Type: "
                        + content_type + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n")
    assert reply.status == 413 and json.loads(reply.body)["error"]["message"].startswith("The request body is larger")
    assert proxy_setup.provider.requests == []  # nothing complete reached it


@pytest.mark.parametrize("body, content_type", [
    (b'{"model": "gpt-4o-forbidden", "messages": []}', "application/json"),
    (b'  {"model": "gpt-4o-forbidden"}', "text/plain"),  # a JSON body under another name is still checked
])
def test_a_disallowed_model_in_a_json_body_is_refused(proxy_setup: ProxySetup, body: bytes, content_type: str) -> None:
    proxy_setup.provider.on("POST", "*", json_reply({}))
    reply = requests.post(proxy_setup.gateway.url + "/proxy/openai/chat/completions", data=body,
                          headers={"Content-Type": content_type}, timeout=10)
    assert reply.status_code == 403 and reply.json()["error"]["code"] == "model_not_allowed"
    assert proxy_setup.provider.requests == []
    assert requests.post(proxy_setup.gateway.url + "/proxy/openai/chat/completions", json={"model": "gpt-4o"},
                         timeout=10).status_code == 200


def test_unknown_and_unconfigured_providers_are_400(proxy_setup: ProxySetup) -> None:
    unknown = requests.get(proxy_setup.gateway.url + "/proxy/nosuch/models", timeout=10)
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "unknown_provider"
    unconfigured = requests.get(proxy_setup.gateway.url + "/proxy/groq/models", timeout=10)
    assert unconfigured.status_code == 400 and unconfigured.json()["error"]["code"] == "provider_not_configured"
    assert "GROQ_API_KEY" in unconfigured.json()["error"]["message"]


def test_unreachable_provider_is_502_and_slow_one_504(proxy_setup: ProxySetup) -> None:
    unreachable = requests.get(proxy_setup.gateway.url + "/proxy/mistral/models", timeout=10)
    assert unreachable.status_code == 502 and unreachable.json()["error"]["type"] == "upstream_unreachable"
    proxy_setup.provider.on("GET", "/v1/slow", json_reply({}, hang=2.5))  # CLIENT_TIMEOUT is 1s
    slow = requests.get(proxy_setup.gateway.url + "/proxy/openai/slow", timeout=10)
    assert slow.status_code == 504 and slow.json()["error"]["type"] == "upstream_timeout"
    assert "sk-provider" not in slow.text + unreachable.text


def test_a_compressed_body_comes_back_as_the_provider_sent_it(proxy_setup: ProxySetup) -> None:
    packed = gzip.compress(b'{"data": []}' * 100)
    proxy_setup.provider.on("GET", "/v1/models", Reply(body=packed, headers={
        "Content-Type": "application/json", "Content-Encoding": "gzip"}))
    reply = raw_request(proxy_setup.gateway.port, b"GET /proxy/openai/models HTTP/1.1\r\nHost: gw\r\n"
                        b"Accept-Encoding: gzip\r\nConnection: close\r\n\r\n")
    assert reply.body == packed and reply.headers["content-encoding"] == "gzip"
    assert reply.headers["content-length"] == str(len(packed))
    assert proxy_setup.provider.requests[-1].headers["accept-encoding"] == "gzip"
    # a caller that asked for no encoding is not sent one: the provider is asked for identity
    raw_request(proxy_setup.gateway.port, b"GET /proxy/openai/models HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
    assert proxy_setup.provider.requests[-1].headers["accept-encoding"] == "identity"


def test_a_caller_that_hangs_up_mid_stream_closes_the_provider_stream(proxy_setup: ProxySetup) -> None:
    proxy_setup.provider.on("GET", "/v1/events", sse_reply([{"n": n} for n in range(50)], delay=0.1))
    with socket.create_connection(("127.0.0.1", proxy_setup.gateway.port), timeout=10) as sock:
        sock.sendall(b"GET /proxy/openai/events HTTP/1.1\r\nHost: gw\r\n\r\n")
        assert b"data: " in sock.recv(65536) + sock.recv(65536)
    assert proxy_setup.provider.aborted.wait(5), "the provider kept streaming to nobody"
    assert proxy_setup.provider.streams_finished == 0


class CutShort:
    """A provider that answers with `reply` and then drops the connection, whatever was promised."""

    def __init__(self, reply: bytes):
        self.reply = reply
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.listener.accept()
                with conn:
                    received = b""
                    while b"\r\n\r\n" not in received:
                        received += conn.recv(65536)
                    conn.sendall(self.reply)


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000,
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"f\r\ndata: partial\n\n\r\n"),
])
def test_a_body_the_provider_cuts_short_is_cut_short_for_the_caller(live_gateway, reply: bytes) -> None:
    provider = CutShort(reply)
    gateway = live_gateway({"DEEPSEEK_API_URL": f"http://127.0.0.1:{provider.port}", "DEEPSEEK_API_KEY": "k"})
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    conn.request("GET", "/proxy/deepseek/files/f-1")
    response = conn.getresponse()
    assert response.status == 200
    with pytest.raises(http.client.IncompleteRead):  # never a complete-looking body
        response.read()
    provider.listener.close()
    gateway.stop()
    assert "was lost mid-response" in gateway.logs() and "Traceback" not in gateway.logs()
