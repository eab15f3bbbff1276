"""The OpenAI Responses API: POST /v1/responses, GET and DELETE /v1/responses/{id}.

A new response is routed by its model like a chat completion (`app.chat.dispatch`). A kept
response is named by its id, which carries no provider: `?provider=` names it, else the one
configured provider that keeps responses (`app.chat.stored`).
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from app.api.answers import answer, dispatcher, respond
from app.chat import endpoints
from app.chat.endpoints import Endpoint
from app.chat.stored import kept_response
from app.late_checks import settles_late
from app.schemas import check, json_object
from app.schemas.responses import RESPONSE

bp = Blueprint("responses", __name__)


@bp.post("/v1/responses")
@settles_late
def create_response() -> Response:
    payload = json_object(request)
    check(RESPONSE, payload)
    return answer(endpoints.RESPONSES, payload)


@bp.get("/v1/responses/<response_id>")
def get_response(response_id: str) -> Response:
    return kept(endpoints.STORED_RESPONSE, response_id)


@bp.delete("/v1/responses/<response_id>")
def delete_response(response_id: str) -> Response:
    return kept(endpoints.DELETED_RESPONSE, response_id)


def kept(endpoint: Endpoint, response_id: str) -> Response:
    # the query goes on to the provider (include[], stream, starting_after...), less the gateway's ?provider=
    query = {name: values if len(values) > 1 else values[0]
             for name, values in request.args.lists() if name != "provider"}
    return respond(kept_response(dispatcher(), endpoint, query, response_id=response_id,
                                 provider=request.args.get("provider"), environ=request.environ))
