"""POST /v1/chat/completions, /v1/completions, /v1/embeddings and /v1/moderations: validate,
dispatch, respond.

The work is in `app.chat` (routing and checks in `dispatch.py`, the call, the relay, usage).
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from app.api.answers import answer
from app.chat import endpoints
from app.late_checks import settles_late
from app.schemas import check, json_object
from app.schemas.chat import CHAT, COMPLETION, EMBEDDING, plainly_valid_chat
from app.schemas.media import MODERATION

bp = Blueprint("chat", __name__)


@bp.post("/v1/chat/completions")
@settles_late
def chat_completions() -> Response:
    payload = json_object(request)
    if not plainly_valid_chat(payload):
        check(CHAT, payload)
    return answer(endpoints.CHAT, payload)


@bp.post("/v1/completions")
@settles_late
def legacy_completions() -> Response:
    payload = json_object(request)
    check(COMPLETION, payload)
    return answer(endpoints.COMPLETIONS, payload)


@bp.post("/v1/embeddings")
@settles_late
def embeddings() -> Response:
    payload = json_object(request)
    check(EMBEDDING, payload)
    return answer(endpoints.EMBEDDINGS, payload)


@bp.post("/v1/moderations")
@settles_late
def moderations() -> Response:
    payload = json_object(request)
    check(MODERATION, payload)
    return answer(endpoints.MODERATIONS, payload)
