"""MCP: the tools of the configured MCP servers, offered to models and run by the gateway.

    client.py   a synchronous MCP client (streamable HTTP over requests)
    catalog.py  the tool catalog, kept up to date by background supervisors (connect, poll, reconnect)
    agent.py    the agent loop the chat view calls

`init_app` puts a `ToolCatalog` on the app and starts its supervisors lazily, on the first
request a worker serves: nothing runs at import time or in gunicorn's master before fork.
"""

from __future__ import annotations

from flask import Flask, current_app

from app.config import Settings
from app.mcp.agent import AgentLoop
from app.mcp.catalog import ToolCatalog

EXTENSION_KEY = "gateway.mcp"


def init_app(app: Flask, settings: Settings) -> None:
    catalog = ToolCatalog(settings)
    app.extensions[EXTENSION_KEY] = AgentLoop(catalog, max_iterations=settings.mcp_max_iterations)
    if catalog.enabled:
        app.before_request(catalog.start)


def agent_loop() -> AgentLoop:
    """The current app's agent loop (its `.catalog` holds the tools)."""
    return current_app.extensions[EXTENSION_KEY]
