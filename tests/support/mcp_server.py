"""A real MCP server for tests: the `mcp` SDK's FastMCP (MCPServer in mcp 2) over streamable HTTP.

Run as a subprocess: `python -m tests.support.mcp_server PORT [--prefix NAME]`. It serves
`/mcp` on 127.0.0.1:PORT with these tools:

    add(a, b)            returns a + b as text
    explode(reason)      always raises, so the client sees an error result
    slow_echo(text, seconds, together)  sleeps, then returns the text; with together=N it
                         returns as soon as N calls are running at once (or, after `seconds`,
                         "alone: <text>"): proof that calls ran concurrently, without timing them
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

    gathering: dict[str, object] = {"running": 0, "all_in": None}

    @server.tool(name=f"{prefix}slow_echo", description="Wait, then echo the text.")
    async def slow_echo(text: str, seconds: float = 0.5, together: int = 0) -> str:
        if not together:
            await anyio.sleep(min(seconds, 5))
            return text
        if gathering["all_in"] is None:
            gathering["all_in"] = anyio.Event()
        all_in = gathering["all_in"]
        gathering["running"] += 1
        try:
            if gathering["running"] >= together:
                all_in.set()
            with anyio.move_on_after(min(seconds, 5)):
                await all_in.wait()
            return text if all_in.is_set() else f"alone: {text}"
        finally:
            gathering["running"] -= 1
            if not gathering["running"]:
                gathering["all_in"] = None

    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--prefix", default="")
    args = parser.parse_args()
    build(args.prefix).run("streamable-http", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
