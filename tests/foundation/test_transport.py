import threading

import pytest

from app.config import Settings
from app.errors import UpstreamTimeout, UpstreamUnreachable
from app.providers.provider import Providers
from tests.support.fake_provider import Reply, json_reply, sse_event
from tests.support.ports import reserved_port


def provider_at(url: str, **env: str):
    return Providers(Settings.from_environ({"OPENAI_API_URL": url, "OPENAI_API_KEY": "k", **env})).lookup("openai")


def test_unreachable_provider_is_upstream_unreachable():
    port = reserved_port()  # held, never listening: connecting is refused
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
    # The provider sends each next event only once the client holds the previous one: a transport
    # that buffered would leave the gates shut (and the provider waiting GATE_TIMEOUT).
    gates = [threading.Event(), threading.Event()]
    events = [sse_event({"n": n}) for n in (1, 2, 3)]
    fake_provider.on("POST", "/v1/chat/completions", Reply(headers={"Content-Type": "text/event-stream"},
                                                           chunks=events, pauses=[0, *gates]))
    provider = provider_at(fake_provider.url + "/v1")
    received = b""
    for chunk in provider.iter_body(provider.request("POST", "/chat/completions", json={})):
        received += chunk
        complete, opened = received.count(b"\n\n"), sum(gate.is_set() for gate in gates)
        assert complete <= opened + 1  # nothing arrived before it was sent: all of it came at once
        if complete == opened + 1 and opened < len(gates):
            gates[opened].set()
    assert received == b"".join(events)


def test_stall_mid_stream_is_a_timeout_not_a_hang(fake_provider):
    never = threading.Event()  # the second event waits for a gate nobody opens
    fake_provider.on("POST", "/v1/chat/completions", Reply(headers={"Content-Type": "text/event-stream"},
                                                           chunks=[sse_event({"n": 1}), sse_event({"n": 2})],
                                                           pauses=[0, never]))
    provider = provider_at(fake_provider.url + "/v1", CLIENT_TIMEOUT="500ms")
    received = b""
    with pytest.raises(UpstreamTimeout):
        for chunk in provider.iter_body(provider.request("POST", "/chat/completions", json={})):
            received += chunk
    assert received == sse_event({"n": 1})  # the stream started, then stalled
    never.set()


def test_a_providers_cookie_is_never_replayed_on_a_later_request(fake_provider):
    fake_provider.on("GET", "/v1/models", json_reply({"data": []}, headers={"Set-Cookie": "session=caller-a; Path=/"}))
    provider = provider_at(fake_provider.url + "/v1")
    for _ in range(2):  # e.g. two different callers
        provider.read_body(provider.request("GET", "/models"))
    assert [seen.headers.get("cookie") for seen in fake_provider.requests] == [None, None]
    assert fake_provider.requests[0].headers["authorization"] == "Bearer k"
