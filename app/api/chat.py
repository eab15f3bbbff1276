"""POST /v1/chat/completions, /v1/completions and /v1/embeddings: validate, forward, answer.

The work is in `app.completions.forward` (routing, vision, upstream call, stream relay, usage).
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from app import completions
from app.mcp import agent_loop
from app.mcp import chat as mcp_chat
from app.schemas import check, json_object
from app.schemas.chat import CHAT, COMPLETION, EMBEDDING, plainly_valid_chat

bp = Blueprint("chat", __name__)


@bp.post("/v1/chat/completions")
def chat_completions() -> Response:
    payload = json_object(request)
    if not plainly_valid_chat(payload):
        check(CHAT, payload)
    if agent_loop().applies():  # MCP on and tools available: the gateway runs the model's MCP calls
        return mcp_chat.forward(payload)
    return completions.forward(completions.CHAT, payload)


@bp.post("/v1/completions")
def legacy_completions() -> Response:
    payload = json_object(request)
    check(COMPLETION, payload)
    return completions.forward(completions.COMPLETIONS, payload)


@bp.post("/v1/embeddings")
def embeddings() -> Response:
    payload = json_object(request)
    check(EMBEDDING, payload)
    return completions.forward(completions.EMBEDDINGS, payload)
