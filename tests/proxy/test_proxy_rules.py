"""The path and header rules on their own, and the view through Flask's test client."""

from __future__ import annotations

import pytest
import responses

from app.errors import UnsafePath
from app.proxy import headers as proxy_headers
from app.proxy import path as proxy_path


def environ(raw_uri: str) -> dict[str, str]:
    return {"RAW_URI": raw_uri, "PATH_INFO": "/ignored", "SCRIPT_NAME": ""}


@pytest.mark.parametrize("raw, forwarded", [
    ("/proxy/openai/models", "/models"),
    ("/proxy/openai/audio/speech?x=1", "/audio/speech"),
    ("/proxy/openai/files/file%20name.txt", "/files/file%20name.txt"),  # stays encoded
    ("/proxy/google/models/gemini-pro:generateContent", "/models/gemini-pro:generateContent"),
    ("/proxy/openai/a.b/..c/c..", "/a.b/..c/c.."),
    ("/proxy/openai/models/", "/models/"),
    ("/proxy/openai/q%23hash", "/q%23hash"),
    ("/proxy/openai/caf%C3%A9", "/caf%C3%A9"),
    ("http://gateway:8080/proxy/openai/models", "/models"),
])
def test_safe_paths_are_forwarded_as_sent(raw: str, forwarded: str) -> None:
    provider = raw.split("/proxy/")[1].split("/")[0]
    assert proxy_path.upstream_path(environ(raw), provider) == forwarded


@pytest.mark.parametrize("raw", [
    "/proxy/openai/../admin", "/proxy/openai/./models", "/proxy/openai/a/..", "/proxy/openai/..",
    "/proxy/openai/%2e%2e/admin", "/proxy/openai/%2E%2e/admin", "/proxy/openai/.%2E/admin",
    "/proxy/openai/%252e%252e/admin", "/proxy/openai/%25252e%25252e/admin",
    "/proxy/openai/..%2fadmin", "/proxy/openai/a%2Fb", "/proxy/openai/a%252fb", "/proxy/openai%2fmodels",
    "/proxy/openai/a%5cb", "/proxy/openai/a%255Cb", "/proxy/openai/a\\b", "/proxy/openai/..\\admin",
    "/proxy/openai//evil.example/x", "/proxy/openai/a//b", "/proxy/openai/%2f%2fevil.example/x",
    "/proxy/openai/http://evil.example/x", "/proxy/openai/https:/evil.example/x", "/proxy/openai/HTTPS:",
    "/proxy/openai/https%3a%2f%2fevil.example",
    "/proxy/openai/a%00b", "/proxy/openai/a%0d%0aX-Injected:%201", "/proxy/openai/a%0ab", "/proxy/openai/a\r\nb",
    "/proxy/openai/a%250d%250ab", "/proxy/openai/a%09b",
    "/proxy/openai/%c0%ae%c0%ae/admin", "/proxy/openai/%ef%bc%8e%ef%bc%8e/admin", "/proxy/openai/a%ef%bc%8fb",
    "/proxy/openai/%2525252e%2525252e", "/proxy/openai/a#b",
])
def test_unsafe_paths_are_refused(raw: str) -> None:
    with pytest.raises(UnsafePath):
        proxy_path.upstream_path(environ(raw), "openai")


def test_the_decoded_path_is_checked_when_the_server_keeps_no_raw_target() -> None:
    assert proxy_path.upstream_path({"PATH_INFO": "/proxy/openai/models"}, "openai") == "/models"
    with pytest.raises(UnsafePath):
        proxy_path.upstream_path({"PATH_INFO": "/proxy/openai/../admin"}, "openai")


def test_a_script_name_prefix_is_skipped() -> None:
    env = {"RAW_URI": "/gw/proxy/openai/models", "SCRIPT_NAME": "/gw", "PATH_INFO": "/proxy/openai/models"}
    assert proxy_path.upstream_path(env, "openai") == "/models"


def test_caller_credentials_and_hop_by_hop_headers_stay_behind() -> None:
    sent = [("Authorization", "Bearer caller"), ("Cookie", "s=1"), ("X-Api-Key", "caller"),
            ("Proxy-Authorization", "Basic x"), ("Host", "gw"), ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "1"), ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Trailer", "X-T"),
            ("Transfer-Encoding", "chunked"), ("Upgrade", "websocket"), ("Content-Length", "12"),
            ("Expect", "100-continue"), ("Content-Type", "application/json"), ("OpenAI-Beta", "assistants=v2")]
    assert proxy_headers.to_provider(sent) == {
        "Content-Type": "application/json", "OpenAI-Beta": "assistants=v2", "Accept-Encoding": "identity"}
    assert proxy_headers.to_provider([("Accept-Encoding", "gzip")]) == {"Accept-Encoding": "gzip"}


def test_provider_headers_come_back_less_hop_by_hop_ones() -> None:
    upstream = [("Content-Type", "text/plain"), ("Connection", "close, X-Hop"), ("X-Hop", "1"),
                ("Keep-Alive", "timeout=5"), ("Proxy-Authenticate", "Basic"), ("Transfer-Encoding", "chunked"),
                ("Content-Length", "5"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Upgrade", "h2c"),
                ("Trailer", "X-T"), ("Content-Encoding", "gzip")]
    assert proxy_headers.to_caller(upstream) == [
        ("Content-Type", "text/plain"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Content-Encoding", "gzip")]
    assert proxy_headers.to_caller([("Content-Length", "5")]) == [("Content-Length", "5")]


def test_an_event_stream_is_marked_unbuffered_for_nginx_unless_the_provider_said_otherwise() -> None:
    assert proxy_headers.to_caller([("content-type", "text/event-stream; charset=utf-8")]) == [
        ("content-type", "text/event-stream; charset=utf-8"), ("X-Accel-Buffering", "no")]
    kept = [("Content-Type", "text/event-stream"), ("X-Accel-Buffering", "yes")]
    assert proxy_headers.to_caller(kept) == kept
    assert proxy_headers.to_caller([("Content-Type", "application/json")]) == [("Content-Type", "application/json")]


PROVIDER = {"OPENAI_API_URL": "https://api.openai.test/v1", "OPENAI_API_KEY": "sk-test",
            "ANTHROPIC_API_URL": "https://api.anthropic.test/v1", "ANTHROPIC_API_KEY": "sk-ant"}


@responses.activate
def test_test_client_forwards_with_the_provider_credential(make_app) -> None:
    responses.add(responses.POST, "https://api.anthropic.test/v1/messages?beta=true", json={"id": "msg_1"},
                  status=201, headers={"anthropic-request-id": "req_1"})
    client = make_app(PROVIDER).test_client()
    body = b'{"model": "claude-3-haiku",  "max_tokens": 5}'
    reply = client.post("/proxy/anthropic/messages?beta=true", data=body, content_type="application/json",
                        headers={"Authorization": "Bearer caller", "x-api-key": "caller", "Cookie": "s=1"})
    assert reply.status_code == 201 and reply.get_json() == {"id": "msg_1"}
    assert reply.headers["anthropic-request-id"] == "req_1"
    sent = responses.calls[0].request
    assert sent.headers["x-api-key"] == "sk-ant" and sent.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in sent.headers and "Cookie" not in sent.headers
    assert sent.body == body  # byte for byte


@responses.activate
@pytest.mark.parametrize("overrides, path, status, code", [
    ({}, "/proxy/nosuch/models", 400, "unknown_provider"),
    ({"OPENAI_API_KEY": ""}, "/proxy/openai/models", 400, "provider_not_configured"),
    ({"DISALLOWED_MODELS": "gpt-4o"}, "/proxy/openai/chat/completions", 403, "model_not_allowed"),
    ({"ALLOWED_MODELS": "openai/gpt-4o-mini"}, "/proxy/openai/chat/completions", 403, "model_not_allowed"),
    ({"SERVER_MAX_REQUEST_BODY_SIZE": "10"}, "/proxy/openai/chat/completions", 413, None),
])
def test_test_client_refusals_reach_no_provider(make_app, overrides, path, status, code) -> None:
    client = make_app({**PROVIDER, **overrides}).test_client()
    reply = client.post(path, json={"model": "gpt-4o", "messages": []})
    assert reply.status_code == status
    assert reply.get_json()["error"]["code"] == code
    assert len(responses.calls) == 0


@responses.activate
def test_allowed_model_passes_the_policy(make_app) -> None:
    responses.add(responses.POST, "https://api.openai.test/v1/chat/completions", json={"ok": 1})
    client = make_app({**PROVIDER, "ALLOWED_MODELS": "openai/gpt-4o"}).test_client()
    assert client.post("/proxy/openai/chat/completions", json={"model": "gpt-4o"}).status_code == 200


@responses.activate
def test_no_content_type_comes_back_unless_the_provider_sent_one(make_app) -> None:
    responses.add(responses.GET, "https://api.openai.test/v1/files/f-1/content", body=b"raw", content_type=None)
    reply = make_app(PROVIDER).test_client().get("/proxy/openai/files/f-1/content")
    assert reply.status_code == 200 and reply.data == b"raw"
    assert "Content-Type" not in reply.headers
