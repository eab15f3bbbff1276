"""The MCP path of a chat call: the agent loop (`app.mcp.agent`) calling the model through this core.

The loop knows nothing of providers: it gets `call_model(body)` / `open_stream(body)`, which
open each model call on the request's already routed and checked targets (`Calls`: retries and
fallbacks apply to every call of the loop) with a fresh meter each, so every model call of the
loop reports its own usage and tool calls.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from app.chat.answer import Answer
from app.chat.call import Calls, MeterFor, complete, stream_events
from app.chat.endpoints import CHAT
from app.streaming import sse

if TYPE_CHECKING:
    from app.mcp.agent import AgentLoop


def answer(loop: AgentLoop, calls: Calls, payload: dict[str, Any], meter_for: MeterFor) -> Answer:
    """Run the loop for a chat payload; `meter_for(route, stream=...)` makes a Meter for one model call."""
    if CHAT.streamed(payload):
        def open_stream(body: dict[str, Any]):
            return stream_events(calls, CHAT, body, meter_for)

        return Answer(200, sse.MIMETYPE, loop.stream(payload, open_stream), stream=True)

    def call_model(body: dict[str, Any]) -> dict[str, Any]:
        return complete(calls, CHAT, body, meter_for)

    data = loop.run(payload, call_model)
    return Answer(200, "application/json", json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode())
