"""Server-sent events as the gateway writes them: one event from an object, and the headers.

Reading events from a provider's byte stream is `app.upstream.sse`.
"""

from __future__ import annotations

import json
from typing import Any

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MIMETYPE = "text/event-stream"


def encode(payload: Any) -> bytes:
    """One event: `data: <json>` (bytes and str are sent as they are) and the blank line."""
    if isinstance(payload, bytes):
        body = payload
    elif isinstance(payload, str):
        body = payload.encode()
    else:
        body = json.dumps(payload, separators=(",", ":")).encode()
    return b"data: " + body + b"\n\n"
