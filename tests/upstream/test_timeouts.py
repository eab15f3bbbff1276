"""The client timeouts as a user meets them, in plain threads (the gevent worker: test_live_outbound.py).

CLIENT_RESPONSE_HEADER_TIMEOUT bounds connect + send + response headers as a whole, so a
provider that trickles its headers is cut with 504; CLIENT_TIMEOUT bounds each silence, never a
whole stream. The MCP client: MCP_RESPONSE_HEADER_TIMEOUT and MCP_CLIENT_TIMEOUT likewise.
"""

from __future__ import annotations

import json
import time

import pytest

from app.config import Settings
from app.errors import UpstreamTimeout
from app.mcp.client import MCPClient, MCPUnreachable
from app.providers.provider import Providers
from tests.support.fake_provider import Recorded, Reply, json_reply, sse_reply

# Headers that would take 60 s at one byte every 0.3 s.
SLOW_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: " + b"x" * 200 + b"\r\n\r\n{}"


def provider_at(url: str, **env: str):
    return Providers(Settings.from_environ({"OPENAI_API_URL": url, "OPENAI_API_KEY": "k", **env})).lookup("openai")


def test_headers_trickled_byte_by_byte_are_cut_at_the_header_timeout(make_trickle):
    trickle = make_trickle(SLOW_HEAD, pause=0.3)
    provider = provider_at(trickle.url + "/v1", CLIENT_RESPONSE_HEADER_TIMEOUT="1s", CLIENT_TIMEOUT="30s")
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as info:
        provider.request("GET", "/models")
    elapsed = time.monotonic() - started
    assert info.value.status == 504
    assert info.value.message == "Provider openai did not send its response headers within 1s."
    assert elapsed < 10  # not the 60 s the headers would take, nor CLIENT_TIMEOUT
    assert trickle.requests == 1


def test_without_a_header_timeout_only_the_gap_bounds_the_wait(make_trickle):
    trickle = make_trickle(b"HTTP/1.1 200 OK\r\n", pause=2.0)
    provider = provider_at(trickle.url + "/v1", CLIENT_RESPONSE_HEADER_TIMEOUT="0", CLIENT_TIMEOUT="500ms")
    with pytest.raises(UpstreamTimeout, match="did not answer in time"):
        provider.request("GET", "/models")


def test_a_stream_longer_than_both_timeouts_is_never_cut(fake_provider):
    # 7 events 0.3 s apart: 2.1 s in all, against a 1 s header timeout and a 1 s gap bound
    fake_provider.on("POST", "/v1/chat/completions", sse_reply([{"n": n} for n in range(6)], delay=0.3))
    provider = provider_at(fake_provider.url + "/v1", CLIENT_RESPONSE_HEADER_TIMEOUT="1s", CLIENT_TIMEOUT="1s")
    body = provider.read_body(provider.request("POST", "/chat/completions", json={}))
    assert body.count(b"data:") == 7 and body.endswith(b"data: [DONE]\n\n")


def test_the_connection_cut_by_a_deadline_is_not_reused(make_trickle, fake_provider):
    trickle = make_trickle(SLOW_HEAD, pause=0.3)
    provider = provider_at(trickle.url + "/v1", CLIENT_RESPONSE_HEADER_TIMEOUT="500ms")
    for _ in range(2):
        with pytest.raises(UpstreamTimeout):
            provider.request("GET", "/models")
    assert trickle.requests == 2


# -- MCP ---------------------------------------------------------------------------------------

def mcp_client(url: str, **env: str) -> MCPClient:
    return MCPClient.from_settings(url, Settings.from_environ({"MCP_DIAL_TIMEOUT": "2s", **env}))


def test_mcp_headers_trickled_are_cut_at_the_mcp_response_header_timeout(make_trickle):
    trickle = make_trickle(SLOW_HEAD, pause=0.3)
    client = mcp_client(trickle.url + "/mcp", MCP_RESPONSE_HEADER_TIMEOUT="1s", MCP_CLIENT_TIMEOUT="0",
                        MCP_REQUEST_TIMEOUT="30s")
    started = time.monotonic()
    with pytest.raises(MCPUnreachable, match="did not send its response headers within 1s"):
        client.initialize()
    assert time.monotonic() - started < 10


def slow_sse_answer(pause: float, events: int):
    """An MCP server whose answer is an SSE stream: `events` notifications `pause` s apart, then the result."""

    def answer(request: Recorded) -> Reply:
        message = request.json()
        if "id" not in message:
            return Reply(status=202)
        result = ({"protocolVersion": "2025-06-18", "capabilities": {}} if message["method"] == "initialize"
                  else {"tools": [{"name": "t", "inputSchema": {"type": "object"}}]})
        note = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "working"}}
        chunks = [f"data: {json.dumps(note)}\n\n".encode()] * events
        chunks.append(f"data: {json.dumps({'jsonrpc': '2.0', 'id': message['id'], 'result': result})}\n\n".encode())
        return Reply(headers={"Content-Type": "text/event-stream"}, chunks=chunks, delay=pause)

    return answer


def test_mcp_client_timeout_bounds_the_whole_exchange(fake_provider):
    # 3.6 s in all, each gap 0.4 s: only a bound on the whole exchange cuts it (else it succeeds)
    fake_provider.on("POST", "/mcp", slow_sse_answer(pause=0.4, events=8))
    client = mcp_client(fake_provider.url + "/mcp", MCP_CLIENT_TIMEOUT="1s", MCP_REQUEST_TIMEOUT="5s",
                        MCP_RESPONSE_HEADER_TIMEOUT="5s")
    with pytest.raises(MCPUnreachable, match="did not complete its answer to initialize within 1s"):
        client.initialize()


def test_mcp_without_a_client_timeout_waits_for_a_slow_but_steady_answer(fake_provider):
    fake_provider.on("POST", "/mcp", slow_sse_answer(pause=0.3, events=2))
    client = mcp_client(fake_provider.url + "/mcp", MCP_CLIENT_TIMEOUT="0", MCP_REQUEST_TIMEOUT="2s")
    assert [tool.name for tool in client.list_tools()] == ["t"]


def test_mcp_server_that_never_answers_is_cut_by_the_request_timeout(fake_provider):
    fake_provider.on("POST", "/mcp", json_reply({}, hang=5))
    client = mcp_client(fake_provider.url + "/mcp", MCP_CLIENT_TIMEOUT="0", MCP_RESPONSE_HEADER_TIMEOUT="0",
                        MCP_REQUEST_TIMEOUT="300ms")
    with pytest.raises(MCPUnreachable, match="did not answer in time"):
        client.initialize()
