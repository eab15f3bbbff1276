"""The outbound layer in the real gunicorn gateway (gevent worker).

A real forward proxy (proxy.py) sees every outbound call the environment sends through it:
providers, /proxy, the OIDC issuer and an MCP server, all named `*.gateway.invalid` so that only
the proxy can reach them. NO_PROXY and loopback targets bypass it. And a provider that trickles
its headers is cut at CLIENT_RESPONSE_HEADER_TIMEOUT with 504 under gevent too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from tests.mcp.conftest import eventually
from tests.mcp.fake_mcp import fake_mcp_server
from tests.support.fake_provider import json_reply
from tests.support.oidc_issuer import DISCOVERY_PATH, JWKS_PATH, OidcIssuer
from tests.upstream.servers import ProxyProcess
from tests.upstream.test_timeouts import SLOW_HEAD

AUDIENCE = "gateway-proxy-test"
COMPLETION = {"id": "c1", "object": "chat.completion", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "via the proxy"}, "finish_reason": "stop"}]}


@pytest.fixture
def proxy(tmp_path) -> Iterator[ProxyProcess]:
    proxy = ProxyProcess(tmp_path).start()
    yield proxy
    proxy.stop()


def test_every_outbound_call_goes_through_the_environments_proxy(live_gateway, proxy, make_fake_provider):
    provider, mcp = make_fake_provider(), make_fake_provider()
    provider.on("POST", "/v1/chat/completions", json_reply(COMPLETION))
    provider.on("GET", "/v1/models", json_reply({"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]}))
    provider.on("GET", "/openai/v1/models", json_reply({"object": "list", "data": [{"id": "llama", "object": "model"}]}))
    fake_mcp_server(mcp, tools_pages=[["lookup"]])
    issuer = OidcIssuer(audience=AUDIENCE, host="oidc.gateway.invalid").start()
    try:
        gateway = live_gateway({
            "http_proxy": proxy.url,  # lower case works too
            "HTTPS_PROXY": proxy.url,
            "NO_PROXY": "mistral.gateway.invalid",
            "OPENAI_API_URL": f"http://openai.gateway.invalid:{provider.port}/v1", "OPENAI_API_KEY": "sk-1",
            "MISTRAL_API_URL": f"http://mistral.gateway.invalid:{provider.port}/v1", "MISTRAL_API_KEY": "sk-2",
            "GROQ_API_URL": f"http://127.0.0.1:{provider.port}/openai/v1", "GROQ_API_KEY": "sk-3",
            "COHERE_API_URL": f"https://cohere.gateway.invalid:{provider.port}", "COHERE_API_KEY": "sk-4",
            "AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": issuer.url, "AUTH_OIDC_CLIENT_ID": AUDIENCE,
            "MCP_ENABLE": "true", "MCP_EXPOSE": "true", "MCP_SERVERS": f"http://mcp.gateway.invalid:{mcp.port}/mcp",
        })
        auth = {"Authorization": f"Bearer {issuer.token(sub='alice')}"}

        def get(path: str) -> requests.Response:
            return requests.get(gateway.url + path, headers=auth, timeout=20)

        # MCP: the worker reached its server through the proxy when it started
        assert [t["name"] for t in eventually(lambda: get("/v1/mcp/tools").json()["data"])] == ["mcp_lookup"]
        chat = requests.post(gateway.url + "/v1/chat/completions", headers=auth, timeout=20,
                             json={"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 200, chat.text
        assert chat.json()["choices"][0]["message"]["content"] == "via the proxy"
        assert get("/proxy/openai/models").json()["data"][0]["id"] == "gpt-4o"
        assert get("/v1/models?provider=groq").status_code == 200  # loopback: direct
        no_proxy = get("/v1/models?provider=mistral")  # NO_PROXY: direct, and the name resolves nowhere
        assert no_proxy.status_code == 502 and "could not be reached" in no_proxy.json()["error"]["message"]
        tunnel = get("/v1/models?provider=cohere")  # https: a CONNECT tunnel (the fake speaks no TLS)
        assert tunnel.status_code == 502

        seen = proxy.seen()
        openai_host = f"openai.gateway.invalid:{provider.port}"
        assert f"POST {openai_host} /v1/chat/completions" in seen
        assert f"GET {openai_host} /v1/models" in seen
        assert f"GET oidc.gateway.invalid:{issuer.port} {DISCOVERY_PATH}" in seen
        assert f"GET oidc.gateway.invalid:{issuer.port} {JWKS_PATH}" in seen
        assert f"POST mcp.gateway.invalid:{mcp.port} /mcp" in seen
        assert f"CONNECT cohere.gateway.invalid:{provider.port}" in seen
        assert not [line for line in seen if "mistral" in line or "127.0.0.1" in line], seen
        assert {r.headers["host"] for r in provider.requests if r.path.startswith("/v1/")} == {openai_host}
        assert [r.path for r in provider.requests if r.path.startswith("/openai/")] == ["/openai/v1/models"]
        assert "Traceback" not in gateway.logs()
    finally:
        issuer.stop()


def test_trickled_headers_are_a_504_in_the_gevent_worker(live_gateway, make_trickle):
    trickle = make_trickle(SLOW_HEAD, pause=0.3)  # 60 s of headers
    gateway = live_gateway({"OPENAI_API_URL": trickle.url + "/v1", "OPENAI_API_KEY": "sk-1",
                            "CLIENT_RESPONSE_HEADER_TIMEOUT": "1s", "CLIENT_TIMEOUT": "30s"})
    started = time.monotonic()
    chat = requests.post(gateway.url + "/v1/chat/completions", timeout=30,
                         json={"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    proxied = requests.get(gateway.url + "/proxy/openai/models", timeout=30)
    assert time.monotonic() - started < 10  # two 1 s cuts, not 60 s of headers nor CLIENT_TIMEOUT
    for response in (chat, proxied):
        assert response.status_code == 504
        assert response.json()["error"] == {"message": "Provider openai did not send its response headers within 1s.",
                                            "type": "upstream_timeout", "code": None}
    assert "Traceback" not in gateway.logs()
