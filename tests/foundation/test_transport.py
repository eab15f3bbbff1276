import itertools
import socket
import time

import pytest

from app.config import Settings
from app.errors import UpstreamTimeout, UpstreamUnreachable
from app.providers.provider import Providers
from tests.support.fake_provider import json_reply, sse_reply


def provider_at(url: str, **env: str):
    return Providers(Settings.from_environ({"OPENAI_API_URL": url, "OPENAI_API_KEY": "k", **env})).lookup("openai")


def test_unreachable_provider_is_upstream_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(UpstreamUnreachable) as info:
        provider_at(f"http://127.0.0.1:{port}/v1").request("GET", "/models")
    assert info.value.status == 502
    assert "openai" in info.value.message


def test_slow_provider_is_upstream_timeout(fake_provider):
    fake_provider.on("GET", "/v1/models", json_reply({"data": []}, hang=2))
    with pytest.raises(UpstreamTimeout) as info:
        provider_at(fake_provider.url + "/v1", CLIENT_TIMEOUT="300ms").request("GET", "/models")
    assert info.value.status == 504


def test_body_chunks_arrive_as_sent(fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", sse_reply([{"n": 1}, {"n": 2}, {"n": 3}], delay=0.2))
    provider = provider_at(fake_provider.url + "/v1")
    response = provider.request("POST", "/chat/completions", json={})
    arrivals = []
    for chunk in provider.iter_body(response):
        arrivals.append((time.monotonic(), chunk))
    assert b"".join(c for _, c in arrivals).count(b"data:") == 4
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(arrivals)]
    assert len(arrivals) >= 3 and max(gaps) >= 0.15  # pauses survive: nothing was buffered


def test_stall_mid_stream_is_a_timeout_not_a_hang(fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", sse_reply([{"n": 1}, {"n": 2}], delay=1.5))
    provider = provider_at(fake_provider.url + "/v1", CLIENT_TIMEOUT="500ms")
    with pytest.raises(UpstreamTimeout):
        # headers come at once; the first event is 1.5 s late
        list(provider.iter_body(provider.request("POST", "/chat/completions", json={})))


def test_a_providers_cookie_is_never_replayed_on_a_later_request(fake_provider):
    fake_provider.on("GET", "/v1/models", json_reply({"data": []}, headers={"Set-Cookie": "session=caller-a; Path=/"}))
    provider = provider_at(fake_provider.url + "/v1")
    for _ in range(2):  # e.g. two different callers
        provider.read_body(provider.request("GET", "/models"))
    assert [seen.headers.get("cookie") for seen in fake_provider.requests] == [None, None]
    assert fake_provider.requests[0].headers["authorization"] == "Bearer k"
