"""Server-sent events as the gateway writes them: one event from an object, the headers, and the
last event of a stream that fails, in the shape each API's clients read.

    error_event(exc)            data: {"error": {...}}      chat, completions (the OpenAI envelope)
    responses_error_event(exc)  event: error + {"type": "error", "code", "message", ...}
                                the Responses API's error event, with the envelope too, so the
                                `openai` SDK raises it with its message
    anthropic_error_event(exc)  event: error + {"type": "error", "error": {"type", "message"}}

Reading events from a provider's byte stream is `app.upstream.sse`.
"""

from __future__ import annotations

import json
from typing import Any

from app.errors import GatewayError, anthropic_body

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MIMETYPE = "text/event-stream"


def encode(payload: Any, *, event: str | None = None) -> bytes:
    """One event: `data: <json>` (bytes and str are sent as they are) and the blank line, after
    `event: <name>` when named."""
    if isinstance(payload, bytes):
        body = payload
    elif isinstance(payload, str):
        body = payload.encode()
    else:
        body = json.dumps(payload, separators=(",", ":")).encode()
    named = b"event: " + event.encode() + b"\n" if event else b""
    return named + b"data: " + body + b"\n\n"


def error_event(exc: GatewayError) -> bytes:
    return encode(exc.envelope())


def responses_error_event(exc: GatewayError) -> bytes:
    return encode({"type": "error", "code": exc.code or exc.type, "message": exc.message, "param": None,
                   **exc.envelope()}, event="error")


def anthropic_error_event(exc: GatewayError) -> bytes:
    return encode(anthropic_body(exc), event="error")
