"""The Anthropic Messages API: POST /v1/messages and /v1/messages/count_tokens.

So the Anthropic SDK (and Claude Code) work with their base URL set to the gateway. The call
goes through the chat core like any other (`app.chat.endpoints.MESSAGES`): a bare `claude-*`
model is Anthropic's, `provider/model` and `?provider=` work as on every route, the gateway's
credential (`x-api-key` or a bearer token) is replaced by the provider's, `anthropic-version`
and `anthropic-beta` are passed on. Every error under /v1/messages is answered in Anthropic's
shape (`app.errors.anthropic_body`), the auth guard's and the rate limits' included.
"""

from __future__ import annotations

from flask import Blueprint, Response, request
from flask.blueprints import BlueprintSetupState

from app.api.answers import answer
from app.chat import endpoints
from app.errors import anthropic_body, shape_errors_under
from app.late_checks import settles_late
from app.schemas import check, json_object
from app.schemas.messages import COUNT_TOKENS, MESSAGE

PATH = "/v1/messages"

bp = Blueprint("messages", __name__)


@bp.record_once
def _anthropic_errors(setup: BlueprintSetupState) -> None:
    shape_errors_under(setup.app, PATH, anthropic_body)


@bp.post(PATH)
@settles_late
def create_message() -> Response:
    payload = json_object(request)
    check(MESSAGE, payload)
    return answer(endpoints.MESSAGES.called_with(headers=request.headers), payload)


@bp.post(PATH + "/count_tokens")
@settles_late
def count_tokens() -> Response:
    payload = json_object(request)
    check(COUNT_TOKENS, payload)
    return answer(endpoints.COUNT_TOKENS.called_with(headers=request.headers), payload)
