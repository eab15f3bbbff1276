"""Relay a provider's event stream to the client, event by event, as it arrives.

`relay()` is the generator a streamed answer's body is made of (`app.chat.passthrough`):

  * each chunk from the provider is cut at its last blank line; the complete events go to the
    client at once, the partial tail waits for the rest of its event (never for more);
  * an optional `look` function sees each block of complete events and returns what to send
    (the same bytes, fewer events, or b"") -- e.g. to read usage or drop the usage-only chunk;
  * a failure after the first byte ends the stream with one `data: {"error": {...}}` event;
  * `close` runs when the stream ends for any reason, the client hanging up included (gunicorn
    closes the response iterator, which closes this generator): it must close the provider's
    response so the provider connection goes away at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from app.errors import GatewayError
from app.server.shutdown import SHUTDOWN
from app.streaming import sse
from app.upstream.sse import EventSplitter

log = logging.getLogger("gateway.streaming")

Look = Callable[[bytes], bytes]


def relay(chunks: Iterable[bytes], *, close: Callable[[], None], look: Look | None = None) -> Iterator[bytes]:
    """Yield complete SSE events from `chunks` as they arrive; see the module docstring."""
    splitter = EventSplitter()
    feed = splitter.feed
    try:
        for chunk in chunks:
            SHUTDOWN.check()  # past the shutdown grace period: end with its error event
            block = feed(chunk)
            if block:
                if look is not None:
                    block = look(block)
                    if not block:
                        continue
                yield block
        tail = splitter.rest()
        if tail.strip():
            tail += b"\n\n"
            yield look(tail) if look is not None else tail
    except GatewayError as exc:
        log.warning("stream ended early: %s", exc.message)
        yield sse.encode(exc.envelope())
    except Exception:
        log.exception("stream failed")
        yield sse.encode(GatewayError("The stream failed inside the gateway.", code="internal_error").envelope())
    finally:
        close()

