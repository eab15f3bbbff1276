"""The requests-based MCP client against the SDK's FastMCP server and a transport-level fake."""

from __future__ import annotations

import json
import socket

import pytest

from app.config import Settings
from app.mcp.client import MCPClient, MCPError, MCPUnreachable, display_url
from tests.mcp.fake_mcp import fake_mcp_server


def client_for(url: str, **env: str) -> MCPClient:
    return MCPClient.from_settings(url, Settings.from_environ({"MCP_DIAL_TIMEOUT": "2s", "MCP_REQUEST_TIMEOUT": "5s",
                                                              **env}))


def test_lists_and_calls_the_tools_of_a_real_server(mcp_server):
    client = client_for(mcp_server.url)
    client.initialize()
    tools = {tool.name: tool for tool in client.list_tools()}
    assert set(tools) == {"add", "explode", "slow_echo"}
    assert tools["add"].description == "Add two integers."
    assert tools["add"].input_schema["required"] == ["a", "b"]
    assert client.call_tool("add", {"a": 2, "b": 40}).text == "42"
    client.close()


def test_a_tool_that_raises_is_an_error_result(mcp_server):
    client = client_for(mcp_server.url)
    result = client.call_tool("explode", {"reason": "test"})  # initializes on first use
    assert result.is_error
    assert "explode" in result.text
    client.close()


def test_an_expired_session_is_reopened_transparently(make_mcp_server):
    server = make_mcp_server().start()
    client = client_for(server.url)
    client.initialize()
    server.stop()
    server.start()  # same port, new process: the old session id is unknown there
    assert client.call_tool("add", {"a": 1, "b": 1}).text == "2"
    client.close()


def test_a_server_that_is_down_is_unreachable():
    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        client = client_for(f"http://127.0.0.1:{bound.getsockname()[1]}/mcp")
        with pytest.raises(MCPUnreachable, match="could not be reached"):
            client.initialize()


def test_follows_the_transport_json_answers_paging_and_headers(fake_provider):
    fake_mcp_server(fake_provider, tools_pages=[["one", "two"], ["three"]])
    client = client_for(fake_provider.url + "/mcp")
    assert [tool.name for tool in client.list_tools()] == ["one", "two", "three"]
    init, initialized, *lists = fake_provider.requests
    assert init.json()["method"] == "initialize"
    assert "mcp-session-id" not in init.headers
    assert initialized.json() == {"jsonrpc": "2.0", "method": "notifications/initialized"}
    for request in (initialized, *lists):
        assert request.headers["mcp-session-id"] == "s-123"
        assert request.headers["mcp-protocol-version"] == "2025-03-26"  # what the server chose
    for request in fake_provider.requests:
        assert request.headers["accept"] == "application/json, text/event-stream"
        assert "authorization" not in request.headers and "cookie" not in request.headers
    assert [json.loads(r.body).get("params") for r in lists] == [None, {"cursor": "1"}]


def test_a_json_rpc_error_is_an_mcp_error(fake_provider):
    fake_mcp_server(fake_provider, tools_pages=[[]])
    client = client_for(fake_provider.url + "/mcp")
    with pytest.raises(MCPError, match="nope"):
        client.call_tool("anything", {})


def test_display_url_drops_credentials_and_query():
    assert display_url("https://user:pw@mcp.example:8443/mcp?token=s3cret") == "https://mcp.example:8443/mcp"
    assert display_url("http://127.0.0.1/mcp") == "http://127.0.0.1/mcp"
