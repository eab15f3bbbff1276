"""A model call's `Answer` (app.chat) as the Flask response a view returns."""

from __future__ import annotations

from flask import Response

from app.chat.answer import Answer
from app.streaming import sse


def respond(answer: Answer) -> Response:
    if not answer.stream:
        return Response(answer.body, status=answer.status, content_type=answer.content_type)
    # An open stream: no length, no caching, no proxy buffering; werkzeug must not buffer it.
    response = Response(answer.body, status=answer.status, mimetype=sse.MIMETYPE, headers=sse.HEADERS)
    response.direct_passthrough = True
    return response
