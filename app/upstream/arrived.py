"""A chunked body read as it arrives, with the chunks that are already here joined into one.

    chunks = arrived(raw.read_chunked(decode_content=False), raw)

A provider writes a stream as one HTTP chunk per event. When the gateway reads more slowly than
the provider writes (a fast provider, a busy worker), several chunks wait in the connection's
read buffer; relaying them one by one costs a pass through the relay, a gunicorn write and a
send to the client for each. `arrived` hands on, in one piece, a chunk together with every
following chunk that is already wholly in the buffer or on the socket, up to JOIN_LIMIT bytes.

It never waits for anything: a chunk is joined only if all of it can be read at once (its size
line, its data and the CRLF after it), so the bytes that have come in go on as soon as the
socket has nothing more. A provider that sends one event at a time, with pauses, is relayed
event by event exactly as before; the client sees the same bytes either way.

Only a body read from a socket through http.client's buffered reader can be looked at this way
(how `requests` reads every response it gets from the network); any other body (a test's canned
response) passes through unchanged, chunk by chunk.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

JOIN_LIMIT = 64 * 1024  # at most this much is joined into one piece


def arrived(chunks: Iterator[bytes], raw: Any) -> Iterator[bytes]:
    """`chunks` (urllib3's `read_chunked`), each one joined with the wholly arrived ones after it."""
    buffered = _buffered_socket(raw)
    if buffered is None:
        yield from chunks
        return
    reader, sock = buffered
    for chunk in chunks:
        if not next_chunk_here(reader, sock):
            yield chunk
            continue
        parts, size = [chunk], len(chunk)
        for more in chunks:
            parts.append(more)
            size += len(more)
            if size >= JOIN_LIMIT or not next_chunk_here(reader, sock):
                break
        yield b"".join(parts)


def next_chunk_here(reader: io.BufferedReader, sock: Any) -> bool:
    """Whether the next chunk (size line, data, CRLF) can be read from `reader` without waiting.
    The last, empty chunk never counts: the trailers after it may still be on their way."""
    waits = sock.gettimeout()
    sock.settimeout(0.0)  # peek: what is buffered, else one read of what the socket has now
    try:
        ahead = reader.peek(1)
    except (OSError, ValueError):  # nothing there yet (TLS: want-read), or the reader is closed
        return False
    finally:
        sock.settimeout(waits)
    line_end = ahead.find(b"\r\n")
    if line_end <= 0:
        return False
    try:
        size = int(ahead[:line_end].split(b";", 1)[0], 16)
    except ValueError:
        return False  # not a size line: let urllib3 read it and raise its own error
    return size > 0 and len(ahead) >= line_end + 2 + size + 2


def _buffered_socket(raw: Any) -> tuple[io.BufferedReader, Any] | None:
    """The buffered reader under a urllib3 response, and the socket it reads, when there are both."""
    reader = getattr(getattr(raw, "_fp", None), "fp", None)
    sock = getattr(getattr(reader, "raw", None), "_sock", None)
    if not isinstance(reader, io.BufferedReader) or not hasattr(sock, "gettimeout") or not hasattr(sock, "settimeout"):
        return None
    return reader, sock
