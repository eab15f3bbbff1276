"""GET /v1/mcp/tools, in the app and in the real gunicorn (gevent) gateway."""

from __future__ import annotations

import requests

from tests.mcp.conftest import eventually
from tests.support.live_gateway import free_port


def test_not_exposed_is_a_403_envelope(make_app):
    response = make_app({"MCP_ENABLE": "true"}).test_client().get("/v1/mcp/tools")
    assert response.status_code == 403
    assert response.json == {"error": {
        "message": "MCP tools endpoint is not exposed. Set MCP_EXPOSE=true to enable.",
        "type": "permission_error", "code": "mcp_not_exposed"}}


def test_exposed_without_servers_is_an_empty_list(make_app):
    response = make_app({"MCP_EXPOSE": "true"}).test_client().get("/v1/mcp/tools")
    assert response.status_code == 200
    assert response.json == {"object": "list", "data": []}


def test_live_gateway_lists_the_tools_of_a_real_server(live_gateway, mcp_server):
    gateway = live_gateway({"MCP_ENABLE": "true", "MCP_EXPOSE": "true", "MCP_SERVERS": mcp_server.url,
                            "MCP_EXCLUDE_TOOLS": "slow_echo"})
    listing = eventually(lambda: requests.get(gateway.url + "/v1/mcp/tools", timeout=5).json()["data"])
    assert [tool["name"] for tool in listing] == ["mcp_add", "mcp_explode"]
    add = listing[0]
    assert add["server"] == mcp_server.url
    assert add["description"] == "Add two integers."
    assert add["input_schema"]["required"] == ["a", "b"]


def test_live_gateway_starts_with_a_server_down_and_picks_it_up_later(live_gateway, make_mcp_server):
    port = free_port()
    gateway = live_gateway({"MCP_ENABLE": "true", "MCP_EXPOSE": "true",
                            "MCP_SERVERS": f"http://127.0.0.1:{port}/mcp", "MCP_MAX_RETRIES": "1",
                            "MCP_RECONNECT_INTERVAL": "200ms", "MCP_POLLING_INTERVAL": "200ms",
                            "MCP_DIAL_TIMEOUT": "500ms"})
    # the gateway answers at once although its only MCP server is down
    assert requests.get(gateway.url + "/v1/mcp/tools", timeout=5).json() == {"object": "list", "data": []}
    server = make_mcp_server(port).start()
    eventually(lambda: requests.get(gateway.url + "/v1/mcp/tools", timeout=5).json()["data"])
    server.stop()
    eventually(lambda: requests.get(gateway.url + "/v1/mcp/tools", timeout=5).json()["data"] == [])
    server.start()
    eventually(lambda: requests.get(gateway.url + "/v1/mcp/tools", timeout=5).json()["data"])
    assert "Traceback" not in gateway.logs()
