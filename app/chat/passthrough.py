"""The plain relay: call the provider and answer as it did.

A non-stream answer comes back byte for byte with the provider's status and content type. A
stream is relayed event by event as it arrives (`app.streaming.relay`) through the stream tap;
a provider that answers a stream request in one piece is passed on as that piece. An endpoint
whose answers are files (`relays_bytes`: audio) gets them chunk by chunk as they arrive, never
read whole; a JSON answer (an error, usage) is read as usual.
A call whose answer carries no usage (a cut stream included) is charged an estimate
(app/chat/estimate.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.chat.answer import Answer
from app.chat.body import hides_usage_chunk
from app.chat.call import open_response
from app.chat.estimate import TextCount, estimated_usage, prompt_chars
from app.chat.tap import StreamTap
from app.streaming import sse
from app.streaming.relay import relay, relay_bytes

if TYPE_CHECKING:
    from app.chat.endpoints import Endpoint
    from app.chat.usage import Meter
    from app.providers.routing import Route


def passthrough(route: Route, endpoint: Endpoint, payload: dict[str, Any], meter: Meter) -> Answer:
    provider = route.provider
    response = open_response(route, endpoint, payload, stream=meter.stream)
    content_type = response.headers.get("Content-Type") or "application/json"
    if meter.stream:
        if content_type.startswith(sse.MIMETYPE):
            tap = StreamTap(endpoint.usage, meter, response, prompt_chars=prompt_chars(payload),
                            hide_usage_chunk=hides_usage_chunk(route, endpoint, payload, stream=True))
            return Answer(response.status_code, sse.MIMETYPE,
                          relay(provider.iter_body(response), close=tap.close, look=tap.look,
                                error_event=endpoint.stream_error), stream=True)
        meter.stream = False  # the provider answered in one piece: pass that on as it is
    if endpoint.relays_bytes and not content_type.startswith("application/json"):
        def close() -> None:
            response.close()
            meter.finish()

        return Answer(response.status_code, content_type, relay_bytes(provider.iter_body(response), close=close),
                      stream=True)
    try:
        raw = provider.read_body(response)
    finally:
        response.close()
    endpoint.usage.read_body(raw, meter)
    if meter.usage is None and response.status_code < 300:
        text = TextCount()
        text.feed(raw)
        meter.usage = estimated_usage(prompt_chars(payload), text.chars)
    meter.finish()
    return Answer(response.status_code, content_type, raw)
