"""Hostile or malformed client input gets a 4xx JSON envelope, never a 500 or an HTML page
(issue 20, item 5). Through the real gunicorn gateway; malformed HTTP over raw sockets."""

from __future__ import annotations

import json

import pytest
import requests

from tests.hardening.raw_http import assert_envelope, closed_within, connect, exchange, read_response

CHAT = "/v1/chat/completions"


def chat_request(body: bytes, path: str = CHAT) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


MALFORMED = {
    "obs-fold header": (b"GET /health HTTP/1.1\r\nHost: gw\r\nX-Folded: a\r\n  b\r\n\r\n", 400),
    "Content-Length not a number": (b"POST /health HTTP/1.1\r\nHost: gw\r\nContent-Length: abc\r\n\r\n", 400),
    "negative Content-Length": (b"POST /health HTTP/1.1\r\nHost: gw\r\nContent-Length: -1\r\n\r\n", 400),
    "two Content-Lengths": (b"POST /health HTTP/1.1\r\nHost: gw\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                            400),
    "Content-Length with chunked": (b"POST /health HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\n"
                                    + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "huge header line": (b"GET /health HTTP/1.1\r\nHost: gw\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
    "too many headers": (b"GET /health HTTP/1.1\r\nHost: gw\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(200))
                         + b"\r\n", 431),
    "request line without a version": (b"GARBAGE\r\n\r\n", 400),
    "bad method": (b"G(T /health HTTP/1.1\r\nHost: gw\r\n\r\n", 400),
    "bad HTTP version": (b"GET /health HTTP/7.3\r\nHost: gw\r\n\r\n", 400),
    "huge request line": (b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: gw\r\n\r\n", 414),
    "bare LF in headers": (b"GET /health HTTP/1.1\nHost: gw\n\n", 400),
    "space before colon": (b"GET /health HTTP/1.1\r\nHost : gw\r\n\r\n", 400),
    "unknown transfer coding": (b"POST /health HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: bogus, chunked\r\n\r\n"
                                + b"0\r\n\r\n", 501),
    "chunk size zz": (b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 400),
    "chunk without its CRLF": (b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n", 400),
}


@pytest.mark.parametrize("data,status", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_http_gets_a_json_envelope_and_the_connection_closes(gateway, fake, data, status):
    with connect(gateway.port) as sock:
        sock.sendall(data)
        response = read_response(sock)
        closed, _ = closed_within(sock, 10)
    assert_envelope(response, status)
    assert response.headers.get("connection") == "close" and closed
    assert not fake.requests  # nothing reached a provider


def test_the_gateway_still_serves_after_malformed_requests(gateway, fake):
    for data, _ in MALFORMED.values():
        exchange(gateway.port, data)
    assert requests.get(gateway.url + "/health", timeout=5).status_code == 200
    assert "Traceback" not in gateway.logs()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def chat_with(metadata: str) -> str:
    return '{"model": "openai/m", "messages": [], "metadata": ' + metadata + "}"


HOSTILE_JSON = {
    "nesting 100 000 deep": chat_with(nested(100_000)),
    "nesting 2 000 deep": chat_with(nested(2_000)),
    "nesting 900 deep": chat_with(nested(900)),
    "lone surrogate escape": r'{"model": "openai/m", "messages": [{"role": "user", "content": "a\ud800b"}]}',
    "lone low surrogate in a key": r'{"model": "openai/m", "messages": [], "x\udc00": 1}',
    "NaN": '{"model": "openai/m", "messages": [], "temperature": NaN}',
    "Infinity": '{"model": "openai/m", "messages": [], "temperature": Infinity}',
    "-Infinity": '{"model": "openai/m", "messages": [], "temperature": -Infinity}',
    "a number too large for a double": '{"model": "openai/m", "messages": [], "temperature": 1e999}',
    "an integer of 5000 digits": '{"model": "openai/m", "messages": [], "seed": %s}' % ("9" * 5000),
}


@pytest.mark.parametrize("body", HOSTILE_JSON.values(), ids=HOSTILE_JSON.keys())
def test_hostile_json_is_refused_with_400_before_any_provider_call(gateway, fake, body):
    response = exchange(gateway.port, chat_request(body.encode()))
    error = assert_envelope(response, 400)
    assert error["code"] == "invalid_json"
    assert not fake.requests


def test_utf8_encoded_surrogates_are_refused(gateway, fake):
    body = b'{"model": "openai/m", "messages": [{"role": "user", "content": "X"}]}'
    body = body.replace(b"X", b"\xed\xa0\x80")  # a surrogate written as UTF-8 bytes: not UTF-8
    assert_envelope(exchange(gateway.port, chat_request(body)), 400)
    assert not fake.requests


def test_strict_json_still_accepts_what_is_valid(gateway, fake):
    body = {"model": "openai/m", "temperature": 0.5, "seed": 10**30,
            "messages": [{"role": "user", "content": "emoji \U0001f600, escaped \\ud83d\\ude00 é"}],
            "metadata": json.loads(nested(64))}
    raw = json.dumps(body).replace("\U0001f600", "\\ud83d\\ude00").encode()  # a valid surrogate pair escape
    response = exchange(gateway.port, chat_request(raw))
    assert response.status == 200, response.body
    sent = fake.requests[-1].json()
    assert sent["messages"][0]["content"].startswith("emoji \U0001f600") and sent["seed"] == 10**30


def test_deep_nesting_on_the_proxy_is_not_a_500(gateway, fake):
    body = '{"model": "gpt-4o", "input": ' + nested(100_000) + "}"
    response = exchange(gateway.port, chat_request(body.encode(), "/proxy/openai/responses"))
    assert response.status < 500, response.body
