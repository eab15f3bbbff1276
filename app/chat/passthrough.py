"""The plain relay: answer as the provider did, from a call opened by `Calls.open` (app/chat/call.py).

A non-stream answer comes back byte for byte with the provider's status and content type. A
stream is relayed event by event as it arrives (`app.streaming.relay`) through the stream tap,
starting with the first event already in hand; a provider that answered a stream request in one
piece is passed on as that piece.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.chat.answer import Answer
from app.chat.body import hides_usage_chunk
from app.chat.tap import StreamTap
from app.streaming import sse
from app.streaming.relay import relay

if TYPE_CHECKING:
    from app.chat.call import Opened
    from app.chat.endpoints import Endpoint
    from app.chat.usage import Meter


def passthrough(opened: Opened, endpoint: Endpoint, payload: dict[str, Any], meter: Meter) -> Answer:
    if opened.body is None:  # a stream, its first event in hand
        tap = StreamTap(endpoint.usage, meter, opened,  # the tap closes `opened` (response and slot)
                        hide_usage_chunk=hides_usage_chunk(opened.route, endpoint, payload, stream=True))
        return Answer(opened.status, sse.MIMETYPE, relay(opened.chunks(), close=tap.close, look=tap.look), stream=True)
    opened.close()
    meter.stream = False  # a stream request the provider answered in one piece is passed on as it is
    endpoint.usage.read_body(opened.body, meter)
    meter.finish()
    return Answer(opened.status, opened.content_type, opened.body)
