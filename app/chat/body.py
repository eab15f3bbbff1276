"""The body a provider gets: the client's, with the provider's model name, and for a stream that
carries usage only on request, that request (`stream_options.include_usage`).

The client's payload is never changed, so the same call can be built again for another route (a
retry or a fallback). Providers whose catalog entry rejects `stream_options` get none; their
usage is then what they send on their own.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.chat.endpoints import Endpoint
    from app.providers.routing import Route


def upstream_body(route: Route, endpoint: Endpoint, payload: dict[str, Any], *, stream: bool) -> bytes:
    body = {**payload, "model": route.model}  # a shallow copy: the model keeps its place
    if stream and endpoint.usage_on_request:
        if route.provider.spec.accepts_stream_options:
            options = payload.get("stream_options")
            body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        else:
            body.pop("stream_options", None)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def hides_usage_chunk(route: Route, endpoint: Endpoint, payload: dict[str, Any], *, stream: bool) -> bool:
    """True when the gateway asked for the usage chunk and the client did not: it is not relayed."""
    if not (stream and endpoint.usage_on_request and route.provider.spec.accepts_stream_options):
        return False
    options = payload.get("stream_options")
    return not (isinstance(options, dict) and options.get("include_usage") is True)
