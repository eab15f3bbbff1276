"""A fake provider's event stream whose tail waits for the test: proves, by events rather than by
timings, that a relay passed the first events on while the provider still held the last.

    gate = GatedStream([sse_event(e) for e in events] + [b"data: [DONE]\\n\\n"], hold_from=-2)
    fake.on("POST", "/v1/chat/completions", gate.reply)
    ... gate.head_sent.wait(10)     # everything before the gate is written and flushed
    ... (the client should have the first event by now)
    gate.release()                  # the provider sends the rest
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from tests.support.fake_provider import Recorded, Reply


class GatedStream:
    def __init__(self, chunks: list[bytes], *, hold_from: int, delay: float = 0.0, timeout: float = 30):
        self.chunks = chunks
        self.delay = delay  # between chunks after the gate
        self.hold_from = hold_from % len(chunks)
        self.timeout = timeout
        self.head_sent = threading.Event()  # chunks before `hold_from` are on the wire
        self.tail_sent = threading.Event()  # every chunk is
        self._gate = threading.Event()

    def release(self) -> None:
        self._gate.set()

    def reply(self, recorded: Recorded) -> Reply:
        """A FakeProvider handler; FakeProvider writes and flushes each chunk before asking for the next."""
        return Reply(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
                     chunks=self._chunks())  # type: ignore[arg-type]  # any iterable of bytes

    def _chunks(self) -> Iterator[bytes]:
        for index, chunk in enumerate(self.chunks):
            if index == self.hold_from:
                self.head_sent.set()
                self._gate.wait(self.timeout)
            elif index > self.hold_from and self.delay:
                time.sleep(self.delay)
            yield chunk
        self.tail_sent.set()
