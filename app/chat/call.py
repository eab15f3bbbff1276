"""One model call: open the provider's response for a route, then read it whole or as events.

    response = open_response(route, endpoint, payload, stream=True)   # the one place a call opens
    data = complete(route, endpoint, payload, meter)                  # non-stream -> parsed JSON
    for event in stream_events(route, endpoint, payload, meter): ...  # stream -> parsed events

`open_response` raises before any byte reached the client: a provider without the endpoint is
501, its error status is `UpstreamStatus` (passed through), an unreachable provider 502, a
silent one 504. A retry or fallback policy wraps it and calls it again for another route.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from app.errors import UpstreamError, UpstreamStatus
from app.streaming import sse
from app.upstream import sse as sse_reader

if TYPE_CHECKING:
    import requests

    from app.chat.endpoints import Endpoint
    from app.chat.usage import Meter
    from app.providers.routing import Route

log = logging.getLogger("gateway.chat")


def open_response(route: Route, endpoint: Endpoint, payload: dict[str, Any], *, stream: bool) -> requests.Response:
    """Send the request `endpoint` builds for `route` to its provider; the response, open for reading."""
    provider = route.provider
    call = endpoint.upstream_request(route, payload, stream=stream)
    response = provider.request(call.method, call.path, data=call.body, params=call.params, stream=True,
                                headers=call.headers)
    if response.status_code < 400:
        return response
    try:
        error_body = provider.read_body(response)
    finally:
        response.close()
    content_type = response.headers.get("Content-Type")
    if content_type and content_type.startswith(sse.MIMETYPE):  # an error must not look like a stream
        error = UpstreamError(f"Provider {provider.id} answered {response.status_code}: "
                              f"{error_body[:1000].decode(errors='replace')}", code="upstream_status")
        error.status = response.status_code
        raise error
    raise UpstreamStatus(response.status_code, error_body, content_type)


def complete(route: Route, endpoint: Endpoint, payload: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """A non-stream call as parsed JSON (for the MCP loop); its usage and tool calls metered."""
    response = open_response(route, endpoint, {**payload, "stream": False}, stream=False)
    try:
        raw = route.provider.read_body(response)
    finally:
        response.close()
    try:
        data = json.loads(raw)
    except ValueError:
        raise UpstreamError(f"Provider {route.provider.id} answered with something that is not JSON.") from None
    endpoint.usage.read(data, meter)
    meter.finish()
    return data


def stream_events(route: Route, endpoint: Endpoint, payload: dict[str, Any], meter: Meter) -> Iterator[dict[str, Any]]:
    """A streamed call as parsed events (for the MCP loop); `[DONE]` ends it.

    Usage is asked for where the endpoint needs it; the usage-only chunk is yielded like any
    event. Closing the iterator closes the provider response. Raises like `open_response` on
    the first `next()`; a mid-stream failure raises the provider's GatewayError.
    """
    response = open_response(route, endpoint, {**payload, "stream": True}, stream=True)
    try:
        for data in sse_reader.iter_data(route.provider.iter_body(response)):
            if data == sse_reader.DONE:
                break
            try:
                event = json.loads(data)
            except ValueError:
                log.warning("provider %s sent an event that is not JSON", route.provider.id)
                continue
            endpoint.usage.read(event, meter)
            yield event
    finally:
        response.close()
        meter.finish()
