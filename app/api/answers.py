"""What the model-calling views share: hand a validated payload to the chat core
(`app.chat.dispatch`), and turn its `Answer` into the Flask response a view returns."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request

from app.chat.answer import Answer
from app.chat.dispatch import EXTENSION_KEY, Dispatcher
from app.chat.endpoints import Endpoint
from app.streaming import sse


def dispatcher() -> Dispatcher:
    return current_app.extensions[EXTENSION_KEY]


def answer(endpoint: Endpoint, payload: dict[str, Any]) -> Response:
    """Route, check and call (`Dispatcher.answer`) for the current request; `?provider=` wins."""
    return respond(dispatcher().answer(endpoint, payload, provider=request.args.get("provider"),
                                      environ=request.environ))


def respond(answer: Answer) -> Response:
    if not answer.stream:
        return Response(answer.body, status=answer.status, content_type=answer.content_type)
    # Relayed as it comes: no length; an event stream also no caching and no proxy buffering.
    if answer.content_type.startswith(sse.MIMETYPE):
        response = Response(answer.body, status=answer.status, mimetype=sse.MIMETYPE, headers=sse.HEADERS)
    else:
        response = Response(answer.body, status=answer.status, content_type=answer.content_type,
                            headers={"X-Accel-Buffering": "no"})
    response.direct_passthrough = True  # werkzeug must not buffer it
    return response
