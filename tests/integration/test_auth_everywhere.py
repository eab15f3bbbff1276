"""Auth across features, on the real gunicorn: the gateway's credential guards every path and
never travels on to a provider."""

import pytest
import requests

from tests.support.fake_provider import FakeProvider, json_reply, sse_reply
from tests.support.live_gateway import LiveGateway

GATEWAY_KEY = "gw-key-integration-0123456789"


@pytest.fixture(scope="module")
def gateway(module_live_gateway, module_fake_provider) -> LiveGateway:
    """One guarded gateway for the module, its openai provider the module's fake."""
    return module_live_gateway({"AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": "", "AUTH_API_KEYS": GATEWAY_KEY,
                                "OPENAI_API_URL": module_fake_provider.url + "/v1",
                                "OPENAI_API_KEY": "sk-provider-secret", "SERVER_WRITE_TIMEOUT": "1s"})


@pytest.fixture
def fake_provider(module_fake_provider) -> FakeProvider:
    return module_fake_provider.reset()


def test_proxy_needs_the_gateway_key_and_forwards_only_the_providers(gateway, fake_provider):
    fake_provider.on("GET", "/v1/files", json_reply({"data": []}))
    with requests.Session() as http:
        http.headers["Connection"] = "close"
        assert http.get(gateway.url + "/proxy/openai/files", timeout=5).status_code == 401
        for headers in ({"Authorization": f"Bearer {GATEWAY_KEY}"}, {"x-api-key": GATEWAY_KEY}):
            response = http.get(gateway.url + "/proxy/openai/files", headers=headers, timeout=5)
            assert response.status_code == 200 and response.json() == {"data": []}
    assert len(fake_provider.requests) == 2  # the refused call never reached the provider
    for seen in fake_provider.requests:
        assert seen.headers["authorization"] == "Bearer sk-provider-secret"
        assert "x-api-key" not in seen.headers
        assert GATEWAY_KEY not in str(seen.headers)


def test_proxy_stream_is_guarded_too(gateway, fake_provider):
    fake_provider.on("POST", "/v1/responses", sse_reply([{"n": 1}], delay=0.01))
    with requests.Session() as http:
        http.headers["Connection"] = "close"
        refused = http.post(gateway.url + "/proxy/openai/responses", json={"stream": True},
                            headers={"Accept": "text/event-stream"}, timeout=5)
        assert refused.status_code == 401 and refused.headers["Content-Type"] == "application/json"
        served = http.post(gateway.url + "/proxy/openai/responses", json={"stream": True},
                           headers={"Accept": "text/event-stream", "x-api-key": GATEWAY_KEY}, timeout=5)
        assert served.status_code == 200 and b"data: [DONE]" in served.content
    assert len(fake_provider.requests) == 1


def test_chat_stream_is_guarded_and_the_key_stays_at_the_gateway(gateway, fake_provider):
    events = [{"choices": [{"index": 0, "delta": {"content": word}}]} for word in ("a", "b")]
    fake_provider.on("POST", "/v1/chat/completions", sse_reply(events, delay=0.01))
    body = {"model": "openai/gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with requests.Session() as http:
        http.headers["Connection"] = "close"
        refused = http.post(gateway.url + "/v1/chat/completions", json=body, timeout=5)
        assert refused.status_code == 401
        assert refused.headers["Content-Type"] == "application/json"
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        served = http.post(gateway.url + "/v1/chat/completions", json=body,
                           headers={"Authorization": f"Bearer {GATEWAY_KEY}"}, timeout=5)
        assert served.status_code == 200 and served.headers["Content-Type"].startswith("text/event-stream")
        assert served.text.count("data: ") == 3 and served.text.rstrip().endswith("data: [DONE]")
    [seen] = fake_provider.requests
    assert seen.headers["authorization"] == "Bearer sk-provider-secret"
    assert GATEWAY_KEY not in str(seen.headers) and GATEWAY_KEY not in gateway.logs()
