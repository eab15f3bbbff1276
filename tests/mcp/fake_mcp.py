"""A FakeProvider playing an MCP server at the JSON-RPC level: plain JSON answers (not SSE),
paged tools/list, and every request recorded (to check what the gateway sends, headers too)."""

from __future__ import annotations

from tests.support.fake_provider import FakeProvider, Recorded, Reply, json_reply


def fake_mcp_server(fake: FakeProvider, *, tools_pages: list[list[str]]) -> None:
    """Serve POST /mcp: initialize (session "s-123", version 2025-03-26), tools/list in pages,
    tools/call answering "called <name>"; anything else is a JSON-RPC error "nope"."""

    def answer(request: Recorded) -> Reply:
        message = request.json()
        method = message.get("method")
        if "id" not in message:
            return Reply(status=202)
        if method == "initialize":
            return json_reply({"jsonrpc": "2.0", "id": message["id"], "result": {
                "protocolVersion": "2025-03-26", "capabilities": {"tools": {}},
                "serverInfo": {"name": "fake", "version": "1"}}}, headers={"Mcp-Session-Id": "s-123"})
        if method == "tools/list":
            page = int((message.get("params") or {}).get("cursor") or 0)
            result = {"tools": [{"name": n, "inputSchema": {"type": "object"}} for n in tools_pages[page]]}
            if page + 1 < len(tools_pages):
                result["nextCursor"] = str(page + 1)
            return json_reply({"jsonrpc": "2.0", "id": message["id"], "result": result})
        if method == "tools/call" and any(message["params"]["name"] in page for page in tools_pages):
            return json_reply({"jsonrpc": "2.0", "id": message["id"], "result": {
                "content": [{"type": "text", "text": "called " + message["params"]["name"]}]}})
        return json_reply({"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": "nope"}})

    fake.on("POST", "/mcp", answer)
