"""The MCP path of POST /v1/chat/completions: the chat view hands over when tools are available.

    if agent_loop().applies():
        return mcp_chat.forward(payload)

Routing, the allow/deny lists and the vision check run first, exactly as on the plain path
(`app.completions`); then the agent loop calls the provider through `complete` /
`stream_events`, with a fresh usage meter per model call (each call's usage and tool calls are
reported by signal).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, current_app, request

from app import completions
from app.completions import Meter
from app.mcp import agent_loop
from app.signals import SUBJECT_KEY
from app.streaming.relay import sse_response


def forward(payload: dict[str, Any]) -> Response:
    route = completions.route_model(payload["model"], request.args.get("provider"))
    completions.check_images(route, payload["messages"])
    app = current_app._get_current_object()
    subject = request.environ.get(SUBJECT_KEY)
    loop = agent_loop()
    if payload.get("stream") is True:
        def open_stream(body: dict[str, Any]):
            return completions.stream_events(route, body, Meter(app, route, subject=subject, stream=True))

        return sse_response(loop.stream(payload, open_stream))

    def call_model(body: dict[str, Any]) -> dict[str, Any]:
        return completions.complete(route, body, Meter(app, route, subject=subject, stream=False))

    answer = loop.run(payload, call_model)
    return Response(json.dumps(answer, ensure_ascii=False, separators=(",", ":")), mimetype="application/json")
