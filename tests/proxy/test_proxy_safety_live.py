"""Paths that would leave the provider are refused with 400 before any connection is made.

Sent over a raw socket, so no client library normalises `..` or `%2f` away. `elsewhere` is a
second server that the smuggled URLs point at; neither it nor the provider may see a request.
"""

from __future__ import annotations

import json

import pytest

from tests.proxy.conftest import ProxySetup, raw_request
from tests.support.fake_provider import Recorded, Reply, json_reply

# {other} is replaced by the second server's host:port
UNSAFE_TARGETS = [
    "/proxy/openai/../../admin",
    "/proxy/openai/models/../../../admin",
    "/proxy/openai/./models",
    "/proxy/openai/%2e%2e/%2e%2e/admin",
    "/proxy/openai/%2E%2e/admin",
    "/proxy/openai/.%2E/admin",
    "/proxy/openai/%252e%252e/admin",
    "/proxy/openai/%25252E%25252E/admin",
    "/proxy/openai/..%2f..%2fadmin",
    "/proxy/openai/..%2F..%2Fadmin",
    "/proxy/openai/..%252f..%252fadmin",
    "/proxy/openai/a%5c..%5c..%5cadmin",
    "/proxy/openai/..\\..\\admin",
    "/proxy/openai%2f..%2f..%2fadmin",
    "/proxy/openai//{other}/steal",
    "/proxy/openai/%2f%2f{other}/steal",
    "/proxy/openai/http://{other}/steal",
    "/proxy/openai/https:/{other}/steal",
    "/proxy/openai/http:%2f%2f{other}/steal",
    "/proxy/openai/models%00.json",
    "/proxy/openai/models%0d%0aHost:%20{other}",
    "/proxy/openai/models%250d%250aX-Injected:%201",
    "/proxy/openai/%c0%ae%c0%ae/admin",
    "/proxy/openai/%ef%bc%8e%ef%bc%8e/admin",
]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unsafe_paths_are_refused_and_reach_nobody(proxy_setup: ProxySetup, method: str) -> None:
    for fake in (proxy_setup.provider, proxy_setup.elsewhere):
        fake.on(method, "*", json_reply({"reached": True}))
    other = f"127.0.0.1:{proxy_setup.elsewhere.port}"
    for target in UNSAFE_TARGETS:
        target = target.replace("{other}", other)
        body = b'{"input": "x"}'
        reply = raw_request(proxy_setup.gateway.port,
                            f"{method} {target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n".encode()
                            + (b"Content-Length: %d\r\n\r\n%s" % (len(body), body) if method == "POST" else b"\r\n"))
        assert reply.status == 400, (target, reply.status, reply.body)
        assert reply.headers["content-type"] == "application/json"
        assert json.loads(reply.body)["error"]["code"] == "unsafe_path", target
    assert proxy_setup.provider.requests == [] and proxy_setup.elsewhere.requests == []


@pytest.mark.parametrize("target", [
    b"/proxy/openai/models\x00.json",
    b"/proxy/openai/models\rHost: elsewhere",
    b"/proxy/openai/models\tx",
    b"/proxy/openai/caf\xc3\xa9/../admin",
])
def test_raw_control_bytes_in_the_path_are_refused(proxy_setup: ProxySetup, target: bytes) -> None:
    """gunicorn itself refuses these request lines; whoever answers, it is a 400 and nothing is forwarded."""
    proxy_setup.provider.on("GET", "*", json_reply({"reached": True}))
    reply = raw_request(proxy_setup.gateway.port, b"GET " + target + b" HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
    assert reply.status == 400
    assert proxy_setup.provider.requests == [] and proxy_setup.elsewhere.requests == []


def test_the_same_paths_made_safe_are_forwarded(proxy_setup: ProxySetup) -> None:
    """The refusals above are about the path, not the route: its safe neighbours get through."""
    def echo_path(recorded: Recorded) -> Reply:
        return json_reply({"path": recorded.raw_path})

    proxy_setup.provider.on("GET", "*", echo_path)
    for target, upstream in [("/proxy/openai/admin", "/v1/admin"), ("/proxy/openai/a..b/c.d", "/v1/a..b/c.d"),
                             ("/proxy/openai/files/a%20b?x=%2F..%2F", "/v1/files/a%20b?x=%2F..%2F")]:
        reply = raw_request(proxy_setup.gateway.port, f"GET {target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n".encode())
        assert reply.status == 200 and json.loads(reply.body) == {"path": upstream}
