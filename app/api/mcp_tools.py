"""GET /v1/mcp/tools: the MCP tools the gateway offers models (only with MCP_EXPOSE=true)."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from app.errors import PermissionDenied
from app.extensions import state
from app.mcp import agent_loop

bp = Blueprint("mcp_tools", __name__)


@bp.get("/v1/mcp/tools")
def list_tools() -> ResponseReturnValue:
    if not state().settings.mcp_expose:
        raise PermissionDenied("MCP tools endpoint is not exposed. Set MCP_EXPOSE=true to enable.",
                               code="mcp_not_exposed")
    return jsonify({"object": "list", "data": [tool.as_listing() for tool in agent_loop().catalog.tools()]})
