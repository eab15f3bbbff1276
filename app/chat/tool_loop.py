"""The MCP path of a chat call: the agent loop (`app.mcp.agent`) calling the model through this core.

The loop knows nothing of providers: it gets `call_model(body)` / `open_stream(body)`, which
call the already routed and checked route with a fresh meter each, so every model call of the
loop reports its own usage and tool calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.chat.answer import Answer
from app.chat.call import complete, stream_events
from app.chat.endpoints import CHAT
from app.streaming import sse

if TYPE_CHECKING:
    from app.chat.usage import Meter
    from app.mcp.agent import AgentLoop
    from app.providers.routing import Route


def answer(loop: AgentLoop, route: Route, payload: dict[str, Any], meter: Callable[..., Meter]) -> Answer:
    """Run the loop for a chat payload; `meter(stream=...)` makes a Meter for one model call."""
    if CHAT.streamed(payload):
        def open_stream(body: dict[str, Any]):
            return stream_events(route, CHAT, body, meter(stream=True))

        return Answer(200, sse.MIMETYPE, loop.stream(payload, open_stream), stream=True)

    def call_model(body: dict[str, Any]) -> dict[str, Any]:
        return complete(route, CHAT, body, meter(stream=False))

    data = loop.run(payload, call_model)
    return Answer(200, "application/json", json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode())
