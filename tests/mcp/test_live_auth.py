"""Auth on the MCP paths of the real gateway, and what an MCP server gets to see of a caller."""

from __future__ import annotations

import json

import requests

from tests.mcp.conftest import eventually
from tests.mcp.fake_mcp import fake_mcp_server
from tests.support.fake_provider import Recorded, Reply, json_reply

GATEWAY_KEY = "gw-key-0123456789"


def test_auth_guards_the_mcp_paths_and_the_callers_key_never_reaches_the_mcp_server(live_gateway,
                                                                                     make_fake_provider):
    provider, mcp = make_fake_provider(), make_fake_provider()
    fake_mcp_server(mcp, tools_pages=[["lookup"]])

    def model(request: Recorded) -> Reply:
        messages = request.json()["messages"]
        if messages[-1]["role"] == "tool":
            return json_reply({"choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": messages[-1]["content"]}}]})
        return json_reply({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "mcp_lookup", "arguments": "{}"}}]}}]})

    provider.on("POST", "/v1/chat/completions", model)
    gateway = live_gateway({"AUTH_ENABLE": "true", "AUTH_API_KEYS": GATEWAY_KEY,
                            "OPENAI_API_URL": provider.url + "/v1", "OPENAI_API_KEY": "sk-provider",
                            "MCP_ENABLE": "true", "MCP_EXPOSE": "true", "MCP_SERVERS": mcp.url + "/mcp"})
    auth = {"Authorization": f"Bearer {GATEWAY_KEY}", "Cookie": "session=abc", "X-Api-Key": GATEWAY_KEY}
    tools = eventually(lambda: requests.get(gateway.url + "/v1/mcp/tools", headers=auth, timeout=5).json()["data"])
    assert [tool["name"] for tool in tools] == ["mcp_lookup"]

    assert requests.get(gateway.url + "/v1/mcp/tools", timeout=5).status_code == 401
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "look it up"}]}
    refused = requests.post(gateway.url + "/v1/chat/completions", json=body, timeout=10)
    assert refused.status_code == 401
    assert provider.requests == []

    answer = requests.post(gateway.url + "/v1/chat/completions", json=body, headers=auth, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "called lookup"
    calls = [r for r in mcp.requests if json.loads(r.body).get("method") == "tools/call"]
    assert len(calls) == 1
    for request in mcp.requests:
        assert GATEWAY_KEY not in json.dumps(request.headers)
        assert "authorization" not in request.headers and "cookie" not in request.headers
