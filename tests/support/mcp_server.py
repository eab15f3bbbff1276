"""A real MCP server for tests: the `mcp` SDK's FastMCP (MCPServer in mcp 2) over streamable HTTP.

Run as a subprocess: `python -m tests.support.mcp_server PORT [--prefix NAME]`. It serves
`/mcp` on 127.0.0.1:PORT with these tools:

    add(a, b)            returns a + b as text
    explode(reason)      always raises, so the client sees an error result
    slow_echo(text, seconds)  sleeps, then returns the text (for concurrency checks)
"""

from __future__ import annotations

import argparse

import anyio
from mcp.server.mcpserver import MCPServer


def build(prefix: str = "") -> MCPServer:
    server = MCPServer(name="gateway-test-server")

    @server.tool(name=f"{prefix}add", description="Add two integers.")
    def add(a: int, b: int) -> str:
        return str(a + b)

    @server.tool(name=f"{prefix}explode", description="Always fails.")
    def explode(reason: str) -> str:
        raise RuntimeError(f"boom: {reason}")

    @server.tool(name=f"{prefix}slow_echo", description="Wait, then echo the text.")
    async def slow_echo(text: str, seconds: float = 0.5) -> str:
        await anyio.sleep(min(seconds, 5))
        return text

    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--prefix", default="")
    args = parser.parse_args()
    build(args.prefix).run("streamable-http", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
