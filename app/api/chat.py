"""POST /v1/chat/completions, /v1/completions and /v1/embeddings: validate, dispatch, respond.

The work is in `app.chat` (routing and checks in `dispatch.py`, the call, the relay, usage).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request

from app.api.answers import respond
from app.chat import endpoints
from app.chat.dispatch import EXTENSION_KEY, Dispatcher
from app.chat.endpoints import Endpoint
from app.schemas import check, json_object
from app.schemas.chat import CHAT, COMPLETION, EMBEDDING, plainly_valid_chat

bp = Blueprint("chat", __name__)


def dispatcher() -> Dispatcher:
    return current_app.extensions[EXTENSION_KEY]


def answer(endpoint: Endpoint, payload: dict[str, Any]) -> Response:
    return respond(dispatcher().answer(endpoint, payload, provider=request.args.get("provider"),
                                      environ=request.environ))


@bp.post("/v1/chat/completions")
def chat_completions() -> Response:
    payload = json_object(request)
    if not plainly_valid_chat(payload):
        check(CHAT, payload)
    return answer(endpoints.CHAT, payload)


@bp.post("/v1/completions")
def legacy_completions() -> Response:
    payload = json_object(request)
    check(COMPLETION, payload)
    return answer(endpoints.COMPLETIONS, payload)


@bp.post("/v1/embeddings")
def embeddings() -> Response:
    payload = json_object(request)
    check(EMBEDDING, payload)
    return answer(endpoints.EMBEDDINGS, payload)
