"""What every call through an `Upstream` does, whichever way it is prepared."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.errors import UpstreamError
from app.providers.provider import Providers
from tests.support.fake_provider import json_reply


def provider_at(url: str, pid: str = "openai", **env: str):
    return Providers(Settings.from_environ({f"{pid.upper()}_API_URL": url, f"{pid.upper()}_API_KEY": "k-1",
                                            **env})).lookup(pid)


def test_a_key_that_cannot_be_a_header_fails_each_call_clearly_and_the_worker_lives(fake_provider):
    openai = provider_at(fake_provider.url + "/v1", OPENAI_API_KEY="sk-bad\nInjected: yes")  # start-up survives
    with pytest.raises(UpstreamError, match="credential cannot be sent as an HTTP header") as info:
        openai.request("GET", "/models")
    assert info.value.status == 502 and "sk-bad" not in info.value.message
    assert fake_provider.requests == []


@pytest.mark.parametrize("path", ["/models", "/models?limit=5&after=a b", "/files/%41%2F?x=%20"])
def test_the_provider_gets_the_same_request_on_the_fast_and_the_full_path(fake_provider, path):
    fake_provider.on("GET", "*", json_reply({}))
    anthropic = provider_at(fake_provider.url + "/v1/", "anthropic")
    anthropic.read_body(anthropic.request("GET", path, headers={"Accept": "application/json", "x-api-key": "caller"}))
    seen = fake_provider.requests[0]
    assert seen.headers["x-api-key"] == "k-1"  # the credential wins over the caller's header
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.headers["accept"] == "application/json" and seen.headers["accept-encoding"] == "identity"
    assert "content-length" not in seen.headers and "transfer-encoding" not in seen.headers


def test_a_body_is_sent_with_its_length(fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", json_reply({}))
    openai = provider_at(fake_provider.url + "/v1")
    for body in (b'{"model": "x"}', b""):
        openai.read_body(openai.request("POST", "/chat/completions", data=body,
                                        headers={"Content-Type": "application/json"}))
    assert [(r.body, r.headers.get("content-length")) for r in fake_provider.requests] == [
        (b'{"model": "x"}', "14"), (b"", "0")]
    assert fake_provider.requests[0].headers["authorization"] == "Bearer k-1"


def test_a_header_the_caller_cannot_send_is_a_clear_error(fake_provider):
    openai = provider_at(fake_provider.url + "/v1")
    with pytest.raises(UpstreamError, match="a header cannot be sent"):
        openai.request("GET", "/models", headers={"X-Bad": "a\r\nInjected: yes"})
    assert fake_provider.requests == []
