"""The plain relay: answer as the provider did, from a call opened by `Calls.open` (app/chat/call.py).

A non-stream answer comes back byte for byte with the provider's status and content type. A
stream is relayed event by event as it arrives (`app.streaming.relay`) through the stream tap,
starting with the first event already in hand; a provider that answered a stream request in one
piece is passed on as that piece. An endpoint whose answers are files (`relays_bytes`: audio)
gets them chunk by chunk as they arrive, never read whole. A call whose answer carries no usage
(a cut stream included) is charged an estimate (app/chat/estimate.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.chat.answer import Answer
from app.chat.body import hides_usage_chunk
from app.chat.estimate import TextCount, estimated_usage, prompt_chars
from app.chat.tap import StreamTap
from app.streaming import sse
from app.streaming.relay import relay, relay_bytes

if TYPE_CHECKING:
    from app.chat.call import Opened
    from app.chat.endpoints import Endpoint
    from app.chat.usage import Meter


def passthrough(opened: Opened, endpoint: Endpoint, payload: dict[str, Any], meter: Meter) -> Answer:
    if opened.body is None and endpoint.relays_bytes:  # a file, relayed as it arrives (see open_once)
        def close() -> None:
            opened.close()
            meter.finish()

        return Answer(opened.status, opened.content_type, relay_bytes(opened.chunks(), close=close), stream=True)
    if opened.body is None:  # a stream, its first event in hand
        tap = StreamTap(endpoint.usage, meter, opened,  # the tap closes `opened` (response and slot)
                        prompt_chars=prompt_chars(payload),
                        hide_usage_chunk=hides_usage_chunk(opened.route, endpoint, payload, stream=True))
        return Answer(opened.status, sse.MIMETYPE,
                      relay(opened.chunks(), close=tap.close, look=tap.look, error_event=endpoint.stream_error),
                      stream=True)
    opened.close()
    meter.stream = False  # a stream request the provider answered in one piece is passed on as it is
    endpoint.usage.read_body(opened.body, meter)
    if meter.usage is None and opened.status < 300:
        text = TextCount()
        text.feed(opened.body)
        meter.usage = estimated_usage(prompt_chars(payload), text.chars)
    meter.finish()
    return Answer(opened.status, opened.content_type, opened.body)
