"""Chunks a fake provider sends in step with the client, to prove a relay holds nothing back.

    gated = Gated([event_1, event_2, done])
    fake.on("POST", path, Reply(headers={"Content-Type": "text/event-stream"}, chunks=gated))
    ... for each event the client receives: gated.received[i].set()
    assert not gated.held_back

The provider sends chunk i+1 only once the client has received chunk i. A gateway that buffered
an event would stall the stream until `patience` runs out, and `held_back` says so: an ordering
proof with no timing bound.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator


class Gated:
    def __init__(self, chunks: list[bytes], patience: float = 10):
        self.chunks = chunks
        self.patience = patience
        self.received = [threading.Event() for _ in chunks]
        self.held_back = False

    def __iter__(self) -> Iterator[bytes]:
        for index, chunk in enumerate(self.chunks):
            if index and not self.received[index - 1].wait(self.patience):
                self.held_back = True
            yield chunk
