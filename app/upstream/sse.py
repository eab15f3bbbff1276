"""Server-sent events read from a byte stream: split it into events, read an event's data.

An event ends at a blank line. Providers write `\\n` line ends (some `\\r\\n`); `EventSplitter`
accepts both and hands back complete events only, so nothing waits for more than one event:

    splitter = EventSplitter()
    for chunk in provider.iter_body(response):
        block = splitter.feed(chunk)     # b"" or one or more complete events, as sent
        ...

`data_of(event)` is the joined `data:` payload of one event; `iter_data(chunks)` every event's
data in order. Writing events is `app.streaming.sse`.
"""

from __future__ import annotations

from collections.abc import Iterator

DONE = b"[DONE]"


class EventSplitter:
    """Buffers a partial event between chunks; `feed` returns every event completed so far."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        """The complete events (as one block of bytes, blank lines kept) that `chunk` finishes."""
        if not self._pending and chunk.endswith(b"\n\n"):
            return chunk  # the usual case: the provider flushed whole events (CRLF ones end in \r\n)
        data = self._pending + chunk if self._pending else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
            if data.endswith(b"\r"):  # a CRLF split across chunks
                self._pending = data
                return b""
        end = data.rfind(b"\n\n")
        if end < 0:
            self._pending = data
            return b""
        self._pending = data[end + 2:]
        return data if not self._pending else data[:end + 2]

    def rest(self) -> bytes:
        """What is left when the stream ends without a final blank line."""
        pending, self._pending = self._pending, b""
        return pending


def events_in(block: bytes) -> list[bytes]:
    """The events of a block from `EventSplitter.feed`, each with its trailing blank line."""
    return [part + b"\n\n" for part in block.split(b"\n\n") if part.strip()]


def data_of(event: bytes) -> bytes | None:
    """The event's data (several `data:` lines joined by newlines), or None if it has none."""
    lines = [line[5:] for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(line[1:] if line.startswith(b" ") else line for line in lines)


def iter_data(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The data of every event of a byte stream, in order (comments and empty events skipped)."""
    splitter = EventSplitter()
    for chunk in chunks:
        block = splitter.feed(chunk)
        if block:
            for event in events_in(block):
                data = data_of(event)
                if data is not None:
                    yield data
    tail = splitter.rest()
    if tail.strip():
        data = data_of(tail)
        if data is not None:
            yield data
