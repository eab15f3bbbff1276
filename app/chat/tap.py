"""The stream tap: what the plain relay looks at while it passes a provider's events on.

`look(block)` sees each block of complete events before it is sent: blocks that may carry
usage or tool calls (the endpoint's `UsageFormat` says, from the bytes) are read into the
meter; the usage-only chunk the client did not ask for is dropped. Every other block is relayed
as it is, unparsed; the text in it is counted (`estimate.TextCount`). `close()` runs when the
relay ends for any reason: it closes the opened call (the provider response and its slot) and reports the usage, or, when the
stream ended without it (the client hung up, the provider cut it, or never sent usage), an
estimate from the prompt and the streamed text, marked `estimated` (app/chat/estimate.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from app.chat.estimate import TextCount, estimated_usage
from app.upstream import sse as sse_reader

if TYPE_CHECKING:
    from app.chat.call import Opened
    from app.chat.usage import Meter, UsageFormat


class StreamTap:
    __slots__ = ("format", "hide_usage_chunk", "meter", "opened", "prompt_chars", "text")

    def __init__(self, usage: UsageFormat, meter: Meter, opened: Opened, *, hide_usage_chunk: bool,
                 prompt_chars: int = 0):
        self.format = usage
        self.meter = meter
        self.opened = opened
        self.hide_usage_chunk = hide_usage_chunk
        self.prompt_chars = prompt_chars
        self.text = TextCount()

    def look(self, block: bytes) -> bytes:
        self.text.feed(block)
        if not self.format.may_carry(block):
            return block  # the common case: nothing to read, relay as is
        kept, dropped = [], False
        for event in sse_reader.events_in(block):
            data = sse_reader.data_of(event)
            if data and data != sse_reader.DONE:
                try:
                    obj = json.loads(data)
                except ValueError:
                    obj = None
                self.format.read(obj, self.meter)
                if self.hide_usage_chunk and self.format.is_usage_only(obj):
                    dropped = True
                    continue
            kept.append(event)
        return b"".join(kept) if dropped else block

    def close(self) -> None:
        self.opened.close()
        if self.meter.usage is None:  # cut short, or a provider that reports none
            self.meter.usage = estimated_usage(self.prompt_chars, self.text.chars)
        self.meter.finish()
