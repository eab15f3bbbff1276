"""MCP: the tools of the configured MCP servers, offered to models and run by the gateway.

    client.py   a synchronous MCP client (streamable HTTP over requests)
    catalog.py  the tool catalog, kept up to date by background supervisors (connect, poll, reconnect)
    agent.py    the agent loop the chat view calls

`init_app` puts a `ToolCatalog` on the app; nothing runs at import time or in gunicorn's master.
`start(app)` connects the servers and `stop(app)` closes their sessions: registered with
`app.lifecycle`, they run when a worker starts and when it exits (gunicorn's `post_worker_init`
and `worker_exit`), so servers are reached before the worker's first request. Outside gunicorn
(an app from `create_app` in tests or scripts), call them yourself.
"""

from __future__ import annotations

from flask import Flask, current_app

from app import lifecycle
from app.config import Settings
from app.mcp.agent import AgentLoop
from app.mcp.catalog import ToolCatalog

EXTENSION_KEY = "gateway.mcp"
# Seconds a worker that exits waits for its supervisors before ending the sessions (gunicorn's
# graceful timeout must leave room for it and the DELETEs).
STOP_TIMEOUT = 1.0


def init_app(app: Flask, settings: Settings) -> None:
    catalog = ToolCatalog(settings)
    app.extensions[EXTENSION_KEY] = AgentLoop(catalog, max_iterations=settings.mcp_max_iterations)
    lifecycle.on_start(app, lambda: start(app))
    lifecycle.on_exit(app, lambda: stop(app))


def start(app: Flask) -> None:
    """Connect the app's MCP servers in the background (returns at once; nothing when MCP is off)."""
    app.extensions[EXTENSION_KEY].catalog.start()


def stop(app: Flask) -> None:
    """Stop the background supervisors and end every MCP session (DELETE)."""
    app.extensions[EXTENSION_KEY].catalog.stop(timeout=STOP_TIMEOUT)


def agent_loop() -> AgentLoop:
    """The current app's agent loop (its `.catalog` holds the tools)."""
    return current_app.extensions[EXTENSION_KEY]
